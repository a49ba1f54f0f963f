"""Pass-through of Anthropic Messages requests (the `messages` face): the client's body goes
to `/v1/messages` as it came, with the deployment's model id; the client's
`anthropic-version` and `anthropic-beta` headers go with it (the version defaults to the
one this module speaks). The answer and the stream events go back unchanged; the
chat-format translators read them only for usage and the ledger, with no local stops
(the client's stop sequences went upstream untouched).
"""
from __future__ import annotations

from typing import Any

from app.providers.anthropic.response import completion
from app.providers.anthropic.stream import AnthropicStreamTranslator
from app.providers.base import (NativeRequest, Provider, Target, UpstreamRequest,
                                token_count)

API_VERSION = "2023-06-01"
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def messages_url(target: Target, path: str = "/v1/messages") -> str:
    # A base given with OpenAI-style "/v1" at the end still means the same API root.
    return target.api_base.rstrip("/").removesuffix("/v1") + path


def request_headers(target: Target, client_headers) -> dict[str, str]:
    headers = {"x-api-key": target.api_key or "", "anthropic-version": API_VERSION,
               "content-type": "application/json"}
    for name in FORWARDED_HEADERS:
        value = client_headers.get(name)
        if value:
            headers[name] = value
    return headers


# Native operation -> its path under the API root.
PATHS = {"messages": "/v1/messages", "messages.count_tokens": "/v1/messages/count_tokens"}


def native_request(native: NativeRequest, target: Target) -> UpstreamRequest:
    body: dict[str, Any] = {**native.body, "model": target.upstream_model}
    return UpstreamRequest("POST", messages_url(target, PATHS[native.api]),
                           request_headers(target, native.headers), body,
                           stream=bool(body.get("stream")))


def native_completion(api: str, payload: Any, target: Target) -> dict:
    """A Message as a chat.completion; a token count as it is."""
    if api == "messages.count_tokens":
        token_count(payload, "input_tokens")
        return payload
    return completion(payload, target, [])


def native_translator(provider: Provider) -> AnthropicStreamTranslator:
    return AnthropicStreamTranslator(provider, [])
