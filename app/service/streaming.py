"""Turning a provider's event stream into OpenAI chat.completion.chunk dicts.

The provider's translator yields fragments; this module stamps every chunk with one
id/created/model, gives each choice its first `role: assistant` delta, keeps the last
usage seen, and emits the usage chunk only when the client asked for it.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from app.errors import UpstreamError
from app.providers.base import (NativeEvent, Provider, StreamTranslator, chat_completion,
                                completion_id)
from app.service.sse import decoder_for
from app.service.transport import TransportError


# What a stream read with `idle_every` yields when the upstream has been silent that long:
# a face's cue to keep its client's connection alive (the Messages face's `ping`).
IDLE = object()


def read_events(response, stream_format: str, provider: Provider, stall_timeout: float,
                ends_by: float | None = None, idle_every: float | None = None):
    """(event, data) pairs from an open upstream stream, as soon as each arrives; no gap
    longer than `stall_timeout`, and nothing after `ends_by` (time.monotonic()) when given.
    With `idle_every`, IDLE whenever that many seconds passed without an event (bytes that
    are no event, such as SSE comments some upstreams send while they wait, do not count):
    the wait for the next piece is cut at that point, so no thread or timer is needed."""
    decoder = decoder_for(stream_format)
    quiet = time.monotonic()  # the last event (or IDLE) yielded
    silent = 0.0  # seconds spent waiting on the upstream since its last bytes
    try:
        while True:
            now = time.monotonic()
            if idle_every is not None and now - quiet >= idle_every:
                quiet = now
                yield IDLE
            wait = stall_timeout - silent
            if ends_by is not None:
                if ends_by <= now:
                    raise _ran_out(provider)
                wait = min(wait, ends_by - now)
            tick = None if idle_every is None else quiet + idle_every - now
            ticking = tick is not None and tick < wait
            response.stall_timeout = tick if ticking else wait
            try:
                piece = response.read1()
            except TransportError as exc:
                if ticking and exc.timed_out:
                    silent += time.monotonic() - now
                    continue  # time for IDLE
                raise
            if not piece:
                break
            silent = 0.0
            for event in decoder.feed(piece):
                quiet = time.monotonic()
                yield event
    except TransportError as exc:
        if exc.timed_out and ends_by is not None and time.monotonic() >= ends_by:
            raise _ran_out(provider) from None
        if exc.timed_out:
            raise UpstreamError(f"{provider.name} stream stalled: no data for {stall_timeout:g} s",
                                provider=provider.name, status=504, type="timeout_error",
                                code="stream_stalled") from None
        raise UpstreamError(f"{provider.name} stream was cut: {exc}",
                            provider=provider.name, status=502, code="stream_interrupted") from None
    yield from decoder.close()


def _ran_out(provider: Provider) -> UpstreamError:
    return UpstreamError(f"{provider.name} stream did not end within the request's timeout",
                         provider=provider.name, status=504, type="timeout_error",
                         code="stream_timeout")


class NativeReader(StreamTranslator):
    """Marks a pass-through stream (app/service/passthrough.py): its events go on unchanged,
    and `reader` (the provider's translator of them) only feeds the accounting."""

    def __init__(self, reader: StreamTranslator):
        self.reader = reader


class ChunkStream:
    """Normalised chunks for one streamed completion.

    It also assembles the whole answer as it passes (text, tool calls, finish reasons),
    so that the finished stream can be accounted, cached and logged like a plain answer.
    `settle` turns the assembled answer into its bill (usage counted when the provider
    sent none, and cost); the usage chunk carries both.
    """

    def __init__(self, provider: str, model: str, include_usage: bool,
                 settle: Callable[[dict], Any]):
        self.provider = provider
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.settle = settle
        self.usage: dict[str, Any] | None = None
        self.bill = None
        self.finished = False
        self.first_chunk_at: float | None = None
        self._choices: dict[int, dict] = {}

    def chunks(self, events, translator: StreamTranslator) -> Iterator[dict]:
        if isinstance(translator, NativeReader):
            yield from self._passthrough(events, translator.reader)
            return
        for event in events:
            if event is IDLE:
                yield IDLE
                continue
            for fragment in translator.on_event(*event):
                yield from self._emit(fragment)
        yield from self._finish(translator)

    def _passthrough(self, events, translator: StreamTranslator) -> Iterator[NativeEvent]:
        """The upstream's own events, unchanged, while the translator's reading of them is
        assembled as `chunks` would (for the bill, the ledger and the cache)."""
        for event, data in events:
            for fragment in translator.on_event(event, data):
                for _ in self._emit(fragment):
                    pass
            yield NativeEvent(event, data)
        self.id = translator.response_id or self.id   # the answer is the upstream's own
        for _ in self._finish(translator):
            pass

    def _finish(self, translator: StreamTranslator) -> Iterator[dict]:
        for fragment in translator.on_end():
            yield from self._emit(fragment)
        if not self.finished:
            raise UpstreamError("the upstream stream ended before the model finished",
                                provider=self.provider, status=502, code="stream_truncated")
        self.bill = self.settle(self.completion())
        if self.include_usage:
            cost = None if self.bill.cost_unknown else self.bill.cost  # no price: not free
            yield self._chunk([], {**self.bill.usage, "cost": cost})

    def completion(self) -> dict:
        """The chat.completion the chunks so far add up to."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message = {"role": "assistant", "content": "".join(state["content"]) or None}
            if state["reasoning"]:
                message["reasoning_content"] = "".join(state["reasoning"])
            if state["thinking_blocks"]:
                message["thinking_blocks"] = state["thinking_blocks"]
            if state["extra_content"]:
                message["extra_content"] = state["extra_content"]
            if state["tool_calls"]:
                message["tool_calls"] = [state["tool_calls"][k] for k in sorted(state["tool_calls"])]
            if state["function_call"]:
                message["function_call"] = state["function_call"]
            choices.append({"index": index, "message": message,
                            "finish_reason": state["finish_reason"]})
        return chat_completion(self.model, choices, self.usage, self.id, self.created)

    def _emit(self, fragment: dict) -> Iterator[dict]:
        if fragment.get("usage"):
            self.usage = fragment["usage"]
        choices = fragment.get("choices") or []
        if not choices:
            return
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
        for choice in choices:
            index = choice.get("index", 0)
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = {"content": [], "reasoning": [],
                                                "thinking_blocks": [], "extra_content": None,
                                                "tool_calls": {},
                                                "function_call": None, "finish_reason": None}
                choice["delta"] = {"role": "assistant", **(choice.get("delta") or {})}
            self._absorb(state, choice)
        yield self._chunk(choices, None)

    def _absorb(self, state: dict, choice: dict) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            state["content"].append(delta["content"])
        if delta.get("reasoning_content"):
            state["reasoning"].append(delta["reasoning_content"])
        state["thinking_blocks"] += delta.get("thinking_blocks") or ()
        if delta.get("extra_content"):   # e.g. Gemini's thought signature on answer text
            state["extra_content"] = delta["extra_content"]
        for call in delta.get("tool_calls") or ():
            slot = state["tool_calls"].setdefault(call.get("index", 0), {
                "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
            if call.get("id"):
                slot["id"] = call["id"]
            if call.get("extra_content"):   # e.g. Gemini's thought signature
                slot["extra_content"] = call["extra_content"]
            function = call.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""
        if delta.get("function_call"):   # OpenAI's legacy function calling: one call
            call = state["function_call"] = state["function_call"] or {"name": "", "arguments": ""}
            call["name"] += delta["function_call"].get("name") or ""
            call["arguments"] += delta["function_call"].get("arguments") or ""
        if choice.get("finish_reason"):
            self._close_empty_arguments(state, choice)
            state["finish_reason"] = choice["finish_reason"]
            self.finished = True

    @staticmethod
    def _close_empty_arguments(state: dict, choice: dict) -> None:
        """A tool call streamed without argument fragments ends with "{}", as the whole answer
        says it (clients json.loads the joined arguments; the cache stores them)."""
        empty = [k for k, slot in sorted(state["tool_calls"].items())
                 if not slot["function"]["arguments"]]
        legacy = state["function_call"]
        if not empty and not (legacy and not legacy["arguments"]):
            return
        delta = choice["delta"] = dict(choice.get("delta") or {})
        if empty:
            delta["tool_calls"] = [*(delta.get("tool_calls") or ()), *(
                {"index": k, "function": {"arguments": "{}"}} for k in empty)]
            for k in empty:
                state["tool_calls"][k]["function"]["arguments"] = "{}"
        if legacy and not legacy["arguments"]:
            delta["function_call"] = {"arguments": "{}"}
            legacy["arguments"] = "{}"

    def _chunk(self, choices: list, usage: dict | None) -> dict:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": choices}
        if self.include_usage:
            chunk["usage"] = usage
        return chunk


def replay(completion: dict, include_usage: bool) -> Iterator[dict]:
    """A stored chat.completion as the chunks a live stream of it would have had."""
    base = {"id": completion["id"], "object": "chat.completion.chunk",
            "created": completion["created"], "model": completion["model"]}
    if include_usage:
        base["usage"] = None
    for choice in completion["choices"]:
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": "assistant"}
        for key in ("reasoning_content", "thinking_blocks", "extra_content"):
            if message.get(key):
                delta[key] = message[key]
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **call}
                                   for i, call in enumerate(message["tool_calls"])]
        if message.get("function_call"):
            delta["function_call"] = message["function_call"]
        index = choice.get("index", 0)
        yield {**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}
        yield {**base, "choices": [{"index": index, "delta": {},
                                    "finish_reason": choice.get("finish_reason") or "stop"}]}
    if include_usage:
        yield {**base, "choices": [], "usage": completion.get("usage")}
