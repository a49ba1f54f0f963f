"""Anthropic's named SSE events -> OpenAI chunk fragments.

message_start carries the input token counts, each content block streams as start / deltas
/ stop, message_delta carries the stop reason and the (cumulative) output count, then
message_stop. `ping` and block types without an OpenAI counterpart (server tools) yield
nothing. Thinking streams as `delta.reasoning_content`; once a thinking block's signature
arrives (or a redacted block starts) the signed block follows as `delta.thinking_blocks`,
for the next turn to send back. OpenAI numbers tool calls 0, 1, ... in the order they start, whatever
the Anthropic block index, so a map from block index to call index is kept. Text passes
through a StopScanner for the stop sequences the API refuses; when one is hit the answer
finishes ("stop") there and the rest of the upstream stream yields only its usage.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.jsonfast import loads
from app.providers.anthropic.response import finish_reason, openai_usage
from app.providers.base import Provider, StopScanner, StreamTranslator

# Anthropic error type -> the HTTP status the API gives it, for errors sent inside a stream.
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


def _delta(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class AnthropicStreamTranslator(StreamTranslator):
    def __init__(self, provider: Provider, stops: list[str]):
        self.provider = provider
        self.scanner = StopScanner(stops)
        self.calls: dict[int, int] = {}       # Anthropic block index -> OpenAI tool call index
        self.usage: dict[str, Any] = {}       # latest Anthropic counts seen
        self.thinking: dict[int, str] = {}    # block index -> thinking text so far

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        payload = loads(data)
        kind = payload.get("type") or event
        if self.scanner.hit and kind != "message_delta":   # the answer has ended
            return ()
        handler = self.HANDLERS.get(kind)
        return handler(self, payload) if handler else ()

    def _text(self, text: str) -> list[dict]:
        text = self.scanner.feed(text)
        fragments = [_delta({"content": text})] if text else []
        if self.scanner.hit:
            fragments.append(_delta({}, "stop"))
        return fragments

    def _count(self, usage: dict | None) -> None:
        self.usage.update({k: v for k, v in (usage or {}).items() if v is not None})

    def message_start(self, payload: dict) -> Iterable[dict]:
        self.response_id = payload["message"].get("id")
        self._count(payload["message"].get("usage"))
        return ()

    def block_start(self, payload: dict) -> Iterable[dict]:
        block = payload["content_block"]
        if block.get("type") == "text":
            return self._text(block.get("text") or "")
        if block.get("type") == "thinking":
            self.thinking[payload["index"]] = ""
            return ()
        if block.get("type") == "redacted_thinking":
            return (_delta({"thinking_blocks": [block]}),)
        if block.get("type") != "tool_use":
            return ()
        index = self.calls[payload["index"]] = len(self.calls)
        return (_delta({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                        "function": {"name": block["name"], "arguments": ""}}]}),)

    def block_delta(self, payload: dict) -> Iterable[dict]:
        delta = payload["delta"]
        if delta.get("type") == "text_delta":
            return self._text(delta.get("text") or "")
        if delta.get("type") == "thinking_delta" and delta.get("thinking"):
            self.thinking[payload["index"]] = self.thinking.get(payload["index"], "") + \
                delta["thinking"]
            return (_delta({"reasoning_content": delta["thinking"]}),)
        if delta.get("type") == "signature_delta":
            return (_delta({"thinking_blocks": [{
                "type": "thinking", "thinking": self.thinking.get(payload["index"], ""),
                "signature": delta.get("signature") or ""}]}),)
        call = self.calls.get(payload["index"])
        if delta.get("type") != "input_json_delta" or call is None or not delta.get("partial_json"):
            return ()
        return (_delta({"tool_calls": [{"index": call,
                                        "function": {"arguments": delta["partial_json"]}}]}),)

    def message_delta(self, payload: dict) -> Iterable[dict]:
        self._count(payload.get("usage"))
        usage = {"choices": [], "usage": openai_usage(self.usage)}
        if self.scanner.hit:
            return (usage,)
        held = self.scanner.flush()
        return ([_delta({"content": held})] if held else []) + [
            _delta({}, finish_reason(payload["delta"].get("stop_reason"))), usage]

    def error(self, payload: dict) -> Iterable[dict]:
        error = payload.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        raise self.provider.upstream_error(ERROR_STATUS.get(kind, 500), payload, {})

    HANDLERS = {"message_start": message_start, "content_block_start": block_start,
                "content_block_delta": block_delta, "message_delta": message_delta,
                "error": error}
