"""Google Gemini (Generative Language API, v1beta): generateContent and its SSE stream.

The key goes in the `x-goog-api-key` header, never in a `?key=` query, so that it
cannot land in a URL that gets logged. Errors are Google RPC statuses
(`{"error": {code, message, status, details}}`); the retry hint is a `RetryInfo`
detail in the body, not a header.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping
from urllib.parse import quote

from app.errors import UpstreamError
from app.jsonfast import loads
from app.providers import context_length, legacy_functions
from app.providers.base import (FollowUp, Provider, StreamTranslator, Target, UpstreamRequest,
                                UpstreamResponse, chat_completion, token_count)
from app.providers.upstream_errors import retry_after_seconds, upstream_error
from app.providers.gemini import embed
from app.providers.gemini.request import wire_body
from app.providers.gemini.response import StreamState, choices, usage

_VERSIONED_BASE = re.compile(r"/v1(beta\d*)?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")   # google.protobuf.Duration in JSON
# ErrorInfo reasons Google gives (with HTTP 400) for a key that is wrong or expired.
_BAD_KEY_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED")


def rpc_error(payload: Any) -> dict:
    """The `error` object of a Google RPC error body (some endpoints wrap it in a list)."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def detail(error: dict, type_suffix: str) -> dict:
    """The first `details` entry whose @type ends with e.g. "google.rpc.RetryInfo"."""
    for entry in error.get("details") or ():
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith(type_suffix):
            return entry
    return {}


class GeminiProvider(Provider):
    name = "gemini"
    context_length_wording = context_length.GEMINI
    key_env = ("GEMINI_API_KEY",)
    base_env = "GEMINI_API_BASE"
    default_base = "https://generativelanguage.googleapis.com"
    supported_params = frozenset({
        "temperature", "top_p", "n", "stream", "stop", "max_tokens", "max_completion_tokens",
        "presence_penalty", "frequency_penalty", "functions", "function_call", "tools",
        "tool_choice", "response_format", "seed", "stream_options", "logprobs", "top_logprobs",
        "reasoning_effort", "web_search_options",
    })  # not logit_bias; not parallel_tool_calls=false (Gemini cannot turn parallel calls off)

    embedding_batch_size = 100   # batchEmbedContents' limit

    def url(self, target: Target, stream: bool, method: str | None = None) -> str:
        base = target.api_base.rstrip("/")
        if not _VERSIONED_BASE.search(base):
            base += "/v1beta"
        model = quote(target.upstream_model.removeprefix("models/"), safe="")
        method = method or ("streamGenerateContent?alt=sse" if stream else "generateContent")
        return f"{base}/models/{model}:{method}"

    @staticmethod
    def headers(target: Target) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-goog-api-key": target.api_key or ""}

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        stream = bool(body.get("stream"))
        return UpstreamRequest("POST", self.url(target, stream), self.headers(target),
                               wire_body(body, target.upstream_model), stream=stream)

    def build_embedding_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        return embed.build_request(body, target, self.url(target, False, "batchEmbedContents"),
                                   self.headers(target))

    def parse_embedding_response(self, response: UpstreamResponse, body: dict[str, Any],
                                 target: Target) -> dict:
        return embed.parse_response(response, target)

    def counts_prompts(self, target: Target) -> bool:
        return True

    def build_count_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        """countTokens with the whole GenerateContentRequest, so that the system instruction
        and the tools count too (`contents` alone would leave them out)."""
        model = target.upstream_model.removeprefix("models/")
        request = {"model": f"models/{model}", **wire_body(body, target.upstream_model)}
        return UpstreamRequest("POST", self.url(target, False, "countTokens"),
                               self.headers(target), {"generateContentRequest": request})

    def parse_count_response(self, response: UpstreamResponse, body: dict[str, Any],
                             target: Target) -> int:
        return token_count(response.payload, "totalTokens", missing=0)  # proto3 drops a 0

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        payload = response.payload
        if not isinstance(payload, dict):
            raise ValueError("the answer is not a JSON object")
        response_id = payload.get("responseId")
        return legacy_functions.answer(chat_completion(
            payload.get("modelVersion") or target.upstream_model,
            choices(payload, body.get("n") or 1), usage(payload.get("usageMetadata")),
            f"chatcmpl-{response_id}" if response_id else None), body)

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return legacy_functions.stream(GeminiStreamTranslator(self, body.get("n") or 1), body)

    def error_message(self, payload: Any) -> str | None:
        return rpc_error(payload).get("message") or super().error_message(payload)

    def error_code(self, payload: Any) -> str | None:
        error = rpc_error(payload)
        return detail(error, "google.rpc.ErrorInfo").get("reason") or error.get("status")

    def upstream_error(self, status: int, payload: Any,
                       headers: Mapping[str, str]) -> UpstreamError:
        """Google's mapping plus two fixes: a bad key (HTTP 400 from Google) is our 401, and
        RetryInfo.retryDelay is the retry hint."""
        error = rpc_error(payload)
        delay = _DURATION.match(str(detail(error, "google.rpc.RetryInfo").get("retryDelay", "")))
        mapped = upstream_error(self.name, status, self.error_message(payload),
                                self.error_code(payload),
                                float(delay.group(1)) if delay else retry_after_seconds(headers))
        if status == 400 and self.error_code(payload) in _BAD_KEY_REASONS:
            mapped.status, mapped.type = 401, "authentication_error"
        return mapped


class GeminiStreamTranslator(StreamTranslator):
    """Each `data:` is a whole GenerateContentResponse; there is no [DONE] (the stream ends)."""

    def __init__(self, provider: GeminiProvider, n: int):
        self.provider = provider
        self.state = StreamState(n)

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        payload = loads(data)
        error = rpc_error(payload)
        if error:
            code = error.get("code")
            raise self.provider.upstream_error(code if isinstance(code, int) and code >= 400
                                               else 500, payload, {})
        if not isinstance(payload, dict):
            raise ValueError("a stream chunk is not a JSON object")
        fragment = self.state.fragment(payload)
        return (fragment,) if fragment else ()
