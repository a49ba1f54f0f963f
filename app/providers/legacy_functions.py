"""OpenAI's legacy function calling: a request with `functions` and no `tools` is answered
in the legacy shape, `message.function_call` with `finish_reason: "function_call"`, streamed
as `delta.function_call`, whatever shape the provider answered in (Anthropic, Gemini and
Cohere answer with tool calls). The legacy API carries one call: the first is kept.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from app.providers.base import StreamTranslator


def is_legacy(body: Mapping[str, Any]) -> bool:
    return bool(body.get("functions")) and not body.get("tools")


def answer(completion: dict, body: Mapping[str, Any]) -> dict:
    """`completion` in the legacy shape when the request was a legacy one."""
    if is_legacy(body):
        for choice in completion.get("choices") or ():
            message = choice.get("message") or {}
            calls = message.pop("tool_calls", None)
            if calls:
                message["function_call"] = calls[0]["function"]
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "function_call"
    return completion


LEGACY_FIELDS = ("functions", "function_call")


def as_tools(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request in today's terms, for a server that only knows tools: `functions` ->
    `tools`, `function_call` -> `tool_choice`, an assistant's `function_call` -> a tool call
    and a `function` message -> the `tool` message answering it. Ids are 9 letters and
    digits (`fn` + the message position), the form the strictest servers (Mistral) take."""
    wire = {k: v for k, v in body.items() if k not in LEGACY_FIELDS}
    if body.get("functions") and not body.get("tools"):
        wire["tools"] = [{"type": "function", "function": f} for f in body["functions"]]
    choice = body.get("function_call")
    if choice is not None and body.get("tool_choice") is None:
        wire["tool_choice"] = choice if isinstance(choice, str) else {
            "type": "function", "function": {"name": choice.get("name")}}
    messages, call_id = [], None
    for position, message in enumerate(body.get("messages") or ()):
        if message.get("role") == "assistant" and message.get("function_call"):
            call_id = f"fn{position:07d}"
            message = {**{k: v for k, v in message.items() if k != "function_call"},
                       "tool_calls": [{"id": call_id, "type": "function",
                                       "function": message["function_call"]}]}
        elif message.get("role") == "function":
            message = {"role": "tool", "tool_call_id": call_id or f"fn{position:07d}",
                       "content": message.get("content")}
        messages.append(message)
    wire["messages"] = messages
    return wire


def stream(translator: StreamTranslator, body: Mapping[str, Any]) -> StreamTranslator:
    """`translator`, or for a legacy request one that turns its tool-call deltas into
    function_call deltas."""
    return LegacyStream(translator) if is_legacy(body) else translator


class LegacyStream(StreamTranslator):
    def __init__(self, inner: StreamTranslator):
        self.inner = inner

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        return [self._reshaped(f) for f in self.inner.on_event(event, data)]

    def on_end(self) -> Iterable[dict]:
        return [self._reshaped(f) for f in self.inner.on_end()]

    @staticmethod
    def _reshaped(fragment: dict) -> dict:
        for choice in fragment.get("choices") or ():
            delta = choice.get("delta") or {}
            calls = delta.pop("tool_calls", None)
            first = [c for c in calls or () if c.get("index", 0) == 0]
            if first:
                function = first[0].get("function") or {}
                delta["function_call"] = {
                    **({"name": function["name"]} if function.get("name") else {}),
                    "arguments": function.get("arguments") or ""}
            if choice.get("finish_reason") == "tool_calls":
                choice["finish_reason"] = "function_call"
        return fragment
