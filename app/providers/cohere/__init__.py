"""Cohere, through its v2 chat API (`POST {base}/v2/chat`, Bearer key).

request.py builds the body, response.py reads answers, stream.py reads the SSE stream.
"""
from __future__ import annotations

from typing import Any, Mapping

from app.errors import UpstreamError
from app.providers import context_length
from app.providers.base import (OPENAI_PARAMS, FollowUp, Provider, StreamTranslator, Target,
                                UpstreamRequest, UpstreamResponse, chat_completion)
from app.providers.cohere import embed
from app.providers.cohere.request import NATIVE_PARAMS, REFUSED_VALUES, SAME_VALUE, wire_body
from app.providers import legacy_functions
from app.providers.cohere.response import choice, usage
from app.providers.cohere.stream import CohereStreamTranslator

# Cohere statuses outside HTTP's usual set: 498 is an invalid token, 499 a cancelled request.
OWN_STATUSES = {498: (401, "authentication_error"), 499: (502, "api_error")}
# Request fields other than OpenAI's that this provider understands.
KNOWN_EXTRAS = NATIVE_PARAMS | set(SAME_VALUE) | {"messages"}


class CohereProvider(Provider):
    name = "cohere"
    context_length_wording = context_length.COHERE
    key_env = ("COHERE_API_KEY", "CO_API_KEY")
    base_env = "COHERE_API_BASE"
    default_base = "https://api.cohere.com"
    # n > 1, logit_bias and parallel_tool_calls: false have no v2 equivalent.
    supported_params = OPENAI_PARAMS - {"n", "logit_bias", "parallel_tool_calls",
                                        "web_search_options"}

    def unsupported_params(self, body: Mapping[str, Any]) -> list[str]:
        """Base refusals, values Cohere cannot express, and fields neither API defines."""
        refused = set(super().unsupported_params(body))
        for key, value in body.items():
            if value is None:
                continue
            if key in REFUSED_VALUES and REFUSED_VALUES[key](value):
                refused.add(key)
            elif key not in OPENAI_PARAMS and key not in KNOWN_EXTRAS:
                refused.add(key)
        return sorted(refused)

    embedding_batch_size = 96   # /v2/embed's limit

    def build_embedding_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Authorization": f"Bearer {target.api_key}"}
        return embed.build_request(body, target, f"{target.api_base.rstrip('/')}/v2/embed",
                                   headers)

    def parse_embedding_response(self, response: UpstreamResponse, body: dict[str, Any],
                                 target: Target) -> dict:
        return embed.parse_response(response, target)

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json",
                   "Authorization": f"Bearer {target.api_key}"}
        return UpstreamRequest("POST", f"{target.api_base.rstrip('/')}/v2/chat", headers,
                               wire_body(body, target.upstream_model), stream=stream)

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        payload = response.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
            raise ValueError("the answer has no message")
        return legacy_functions.answer(chat_completion(
            target.upstream_model, [choice(payload, self.name)], usage(payload.get("usage")),
            f"chatcmpl-{payload['id']}"), body)

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return legacy_functions.stream(CohereStreamTranslator(self.name), body)

    def error_message(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("message"), str):
            return payload["message"]   # Cohere's error body: {"message": ..., "id"?: ...}
        return super().error_message(payload)

    def upstream_error(self, status: int, payload: Any, headers: Mapping[str, str]) -> UpstreamError:
        error = super().upstream_error(status, payload, headers)
        if status in OWN_STATUSES:
            error.status, error.type = OWN_STATUSES[status]
        return error
