"""Cohere v2 SSE events -> OpenAI chunk fragments.

Each `data:` holds one JSON event whose `type` says what it is (the SSE `event:` line
repeats it); the stream ends with `data: [DONE]`. The tool plan streams as content (as
the whole answer carries it beside the tool calls), thinking as `reasoning_content`;
citations and debug events have no
OpenAI counterpart and are left out.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.jsonfast import loads
from app.providers.base import StreamTranslator
from app.providers.cohere.response import failure, finish_reason, logprob_entries, usage


def _message(event: dict) -> dict:
    return (event.get("delta") or {}).get("message") or {}


def _choice(delta: dict, **extra) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None, **extra}]}


class CohereStreamTranslator(StreamTranslator):
    def __init__(self, provider: str):
        self.provider = provider
        self.tool_calls = 0      # tool calls started so far; the current one is tool_calls - 1

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        if data.strip() == "[DONE]":
            return ()
        payload = loads(data)
        handler = self._HANDLERS.get(payload.get("type")) if isinstance(payload, dict) else None
        return handler(self, payload) if handler else ()

    def _content(self, event: dict) -> list[dict]:
        content = _message(event).get("content") or {}
        if content.get("thinking"):
            return [_choice({"reasoning_content": content["thinking"]})]
        text = content.get("text")
        logprobs = event.get("logprobs")
        extra = {"logprobs": {"content": logprob_entries([logprobs])}} if logprobs else {}
        return [_choice({"content": text}, **extra)] if text else []

    def _tool_plan(self, event: dict) -> list[dict]:
        text = _message(event).get("tool_plan")
        return [_choice({"content": text})] if text else []

    def _call_delta(self, arguments: str, start: dict | None = None) -> list[dict]:
        """One tool-call fragment; `start` (id, name) only on a call's first fragment."""
        head = {"id": start["id"], "type": "function"} if start else {}
        function = {"name": start["function"]["name"]} if start else {}
        return [_choice({"tool_calls": [{"index": self.tool_calls - 1, **head,
                                         "function": {**function, "arguments": arguments}}]})]

    def _tool_call_start(self, event: dict) -> list[dict]:
        call = _message(event)["tool_calls"]
        self.tool_calls += 1
        return self._call_delta((call.get("function") or {}).get("arguments") or "", call)

    def _tool_call_delta(self, event: dict) -> list[dict]:
        arguments = ((_message(event).get("tool_calls") or {}).get("function") or {}).get("arguments")
        return self._call_delta(arguments) if arguments and self.tool_calls else []

    def _message_end(self, event: dict) -> list[dict]:
        delta: dict[str, Any] = event.get("delta") or {}
        if delta.get("error"):
            raise failure(self.provider, delta.get("finish_reason") or "ERROR", delta["error"])
        finish = finish_reason(self.provider, delta.get("finish_reason"))
        fragments = [{"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
        counted = usage(delta.get("usage"))
        if counted:
            fragments.append({"choices": [], "usage": counted})
        return fragments

    _HANDLERS = {"content-start": _content, "content-delta": _content,
                 "tool-plan-delta": _tool_plan,
                 "tool-call-start": _tool_call_start, "tool-call-delta": _tool_call_delta,
                 "message-end": _message_end}
