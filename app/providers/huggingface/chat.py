"""Chat models: OpenAI's chat body, trimmed to Hugging Face's chat-completion contract.

The router (and a TGI server's Messages API) speak OpenAI's format, so the OpenAI
provider's request and answer handling is reused; what differs is written here:
- `stop` is always a list; `max_completion_tokens` is sent as `max_tokens`.
- A message holds `content` or `tool_calls`, never both and never a null content: an
  assistant turn with text and tool calls becomes two turns (text, then the calls).
- `developer` messages are sent as `system` (chat templates know no developer role).
- OpenAI parameters HF does not define (`user`, neutral `n`/`parallel_tool_calls`, ...)
  are not sent; other extra fields pass through for forward compatibility.
- Answers from TGI may end with `stop_sequence`/`eos_token` and keep the stop sequence in
  the text (see textgen.py); tool-call arguments from TGI before 2.3 are objects.
- Streams repeat `role` in every delta and `id`/`type`/`name` in every tool-call
  fragment; OpenAI clients join repeated strings, so they are kept on the first only.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.jsonfast import dumps
from app.providers import legacy_functions
from app.providers.base import OPENAI_PARAMS, StopScanner, stop_list
from app.providers.huggingface.textgen import finish_reason
from app.providers.openai import OpenAIStreamTranslator

# OpenAI parameters HF's chat contract defines (huggingface-tasks/chat-completion/input.json).
SENT = frozenset({"temperature", "top_p", "stop", "max_tokens", "presence_penalty",
                  "frequency_penalty", "seed", "tools", "tool_choice", "response_format",
                  "logprobs", "top_logprobs", "stream", "stream_options"})

# Not supported: n (one choice), logit_bias (a list there, and unused), parallel_tool_calls
# (no way to forbid parallel calls). Legacy functions are sent as tools.
SUPPORTED = SENT | {"max_completion_tokens", *legacy_functions.LEGACY_FIELDS}
OUT_OF_RANGE = {"seed": lambda v: v < 0}   # the contract's minimum is 0


def wire_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    body = legacy_functions.as_tools(body)
    wire = {key: value for key, value in body.items()
            if value is not None and (key in SENT or key not in OPENAI_PARAMS)}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        wire["max_tokens"] = limit
    if "stop" in wire:
        wire["stop"] = stop_list(wire["stop"])
    wire["messages"] = [turn for message in body["messages"] for turn in _turns(message)]
    wire["model"] = model
    return wire


def _turns(message: dict[str, Any]) -> list[dict[str, Any]]:
    message = dict(message)
    if message.get("role") == "developer":
        message["role"] = "system"
    content = message.pop("content", None)
    calls = message.pop("tool_calls", None)
    if not calls:
        return [{**message, "content": "" if content is None else content}]
    text = [] if content in (None, "", []) else [{**message, "content": content}]
    return text + [{**message, "tool_calls": calls}]


def normalise(result: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    for choice in result["choices"]:
        message = choice["message"]
        scanner = StopScanner(body.get("stop"))
        if isinstance(message["content"], str):
            message["content"] = scanner.cut(message["content"])
        choice["finish_reason"] = "stop" if scanner.hit else finish_reason(choice["finish_reason"])
        functions = [call.get("function") or {} for call in message.get("tool_calls") or ()]
        for function in functions + [message.get("function_call") or {}]:
            if not isinstance(function.get("arguments", ""), str):
                function["arguments"] = dumps(function["arguments"]).decode()
    return result


class ChatStreamTranslator(OpenAIStreamTranslator):
    def __init__(self, provider, stop: Any):
        super().__init__(provider)
        self._scanners: dict[int, StopScanner] = {}
        self._stop = stop
        self._calls_seen: set[tuple[int, int]] = set()

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        out = []
        for fragment in super().on_event(event, data):
            fragment["choices"] = [choice for choice in fragment["choices"] if self._trim(choice)]
            if fragment["choices"] or fragment.get("usage"):
                out.append(fragment)
        return out

    def _trim(self, choice: dict[str, Any]) -> bool:
        """Make one choice OpenAI-shaped; False when nothing is left to send."""
        delta = choice.get("delta") or {}
        delta.pop("role", None)
        delta.pop("tool_call_id", None)
        index = choice.get("index", 0)
        scanner = self._scanners.setdefault(index, StopScanner(self._stop))
        text = scanner.feed(delta.pop("content", None) or "")
        reason = choice.get("finish_reason")
        if reason:
            text += scanner.flush()
            choice["finish_reason"] = "stop" if scanner.hit else finish_reason(reason)
        if text:
            delta["content"] = text
        for call in delta.get("tool_calls") or ():
            if (index, call.get("index", 0)) in self._calls_seen:
                call.pop("id", None)
                call.pop("type", None)
                (call.get("function") or {}).pop("name", None)
            else:
                self._calls_seen.add((index, call.get("index", 0)))
        choice["delta"] = delta
        return bool(delta or reason or choice.get("logprobs"))
