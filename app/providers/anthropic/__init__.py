"""Anthropic's Messages API (`claude-*`, `anthropic/<model>`), claude-2 era models included.

`POST {ANTHROPIC_API_BASE}/v1/messages` with `x-api-key` and `anthropic-version`. Error
bodies `{"type":"error","error":{"type","message"}}` are read by the base class (message,
and the error type as code); statuses use the shared mapping, so a 529 overloaded_error
reaches the client as a 502 with code "overloaded_error" and upstream_status 529 kept for
retries. The translation decisions are documented in request.py and response.py.
"""
from __future__ import annotations

from typing import Any

from app.providers.anthropic.native import (PATHS, messages_url, native_completion,
                                            native_request, native_translator,
                                            request_headers)
from app.providers.anthropic.request import (local_stops, sampling_drops, unsupported_values,
                                             wire_body)
from app.providers.anthropic.response import completion
from app.providers.anthropic.stream import AnthropicStreamTranslator
from app.providers import context_length, legacy_functions
from app.providers.base import (FollowUp, NativeRequest, Provider, StreamTranslator, Target,
                                UpstreamRequest, UpstreamResponse)


class AnthropicProvider(Provider):
    name = "anthropic"
    context_length_wording = context_length.ANTHROPIC
    key_env = ("ANTHROPIC_API_KEY",)
    base_env = "ANTHROPIC_API_BASE"
    default_base = "https://api.anthropic.com"
    native_apis = frozenset(PATHS)   # the Messages API passed through: native.py
    # n > 1, penalties, seed, logit_bias and logprobs have no Messages API counterpart.
    supported_params = frozenset({
        "temperature", "top_p", "stop", "max_tokens", "max_completion_tokens", "user",
        "tools", "tool_choice", "functions", "function_call", "parallel_tool_calls",
        "response_format", "stream", "stream_options", "reasoning_effort",
        "web_search_options",
    })

    def unsupported_params(self, body: dict[str, Any]) -> list[str]:
        return sorted(super().unsupported_params(body) + unsupported_values(body))

    def dropped_params(self, body: dict[str, Any], target: Target) -> list[str]:
        return sampling_drops(body)

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        return UpstreamRequest("POST", messages_url(target), request_headers(target, {}),
                               wire_body(body, target), stream=bool(body.get("stream")))

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        return legacy_functions.answer(completion(response.payload, target, local_stops(body)),
                                       body)

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return legacy_functions.stream(AnthropicStreamTranslator(self, local_stops(body)), body)

    def build_native_request(self, native: NativeRequest, target: Target) -> UpstreamRequest:
        return native_request(native, target)

    def parse_native_response(self, api: str, response: UpstreamResponse,
                              target: Target) -> dict:
        return native_completion(api, response.payload, target)

    def native_stream_translator(self, api: str, target: Target) -> StreamTranslator:
        return native_translator(self)
