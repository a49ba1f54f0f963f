"""Anthropic's Messages event stream, from the service's chat chunks (translated targets) or
from the upstream's own events (pass-through).

Translated, the sequence is Anthropic's: `message_start` (usage with the prompt's token
count, counted before the answer as Anthropic does), `ping`, then per content block
`content_block_start`, its deltas (`thinking_delta` + `signature_delta`, `text_delta`,
`input_json_delta`) and `content_block_stop`, one block open at a time, then
`message_delta` with `stop_reason` and the final usage, and `message_stop`. While the
upstream is silent (a slow first token, a long reasoning phase) a `ping` goes out every
`messages_ping_interval` seconds, as Anthropic sends them; a silence before the first chunk
starts the stream with `message_start`. A failure after the first event is an `error`
event, so a cut stream never looks finished.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

from app.errors import ClientDisconnected, ProxyError
from app.faces.messages.response import (error_body, message_id, reasoning_of, skeleton,
                                         stop_reason, text_block, thinking_block, usage_of)
from app.jsonfast import dumps
from app.providers.base import NativeEvent, StopScanner, completion_id
from app.service.streaming import IDLE

log = logging.getLogger("switchboard")


def frame(event: str, payload: dict) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


PING = frame("ping", {"type": "ping"})


def error_frame(error: ProxyError) -> bytes:
    return frame("error", error_body(error))


def guarded(frames: Iterable[bytes]) -> Iterator[bytes]:
    """The frames, a failure after the first byte ending them with an `error` event."""
    try:
        yield from frames
    except ClientDisconnected:
        return  # nobody is left to read an error event
    except ProxyError as exc:
        yield error_frame(exc)
    except Exception:
        log.exception("stream failed")
        yield error_frame(ProxyError("The stream failed inside the proxy.",
                                     code="internal_error"))


def native_frames(events: Iterable[NativeEvent]) -> Iterator[bytes]:
    """The upstream's events as they came."""
    for event in events:
        head = b"event: " + event.event.encode() + b"\n" if event.event else b""
        yield head + b"data: " + event.data.encode() + b"\n\n"


class EventWriter:
    """Chat chunks -> Messages events, for one answer."""

    def __init__(self, model: str, input_tokens: int, stops: list[str]):
        self.model = model
        self.input_tokens = input_tokens
        self.scanner = StopScanner(stops)
        self.index = -1                      # the current block's index
        self.open: str | None = None         # the current block's type
        self.tool_blocks: dict[int, int] = {}  # chat tool call index -> block index
        self.finish: str | None = None
        self.usage: dict | None = None
        self.started = False

    def frames(self, chunks: Iterable[dict]) -> Iterator[bytes]:
        for chunk in chunks:
            if chunk is IDLE:  # the upstream is silent: Anthropic's keep-alive
                yield from self._start(completion_id()) if not self.started else (PING,)
                continue
            if not self.started:
                yield from self._start(chunk.get("id"))
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in (chunk.get("choices") or [])[:1]:
                yield from self._choice(choice)
        yield from self._close()
        reason = "stop_sequence" if self.scanner.hit else stop_reason(self.finish)
        usage = usage_of(self.usage) if self.usage else {**usage_of(None),
                                                         "input_tokens": self.input_tokens}
        yield frame("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": reason, "stop_sequence": self.scanner.matched,
            "stop_details": None, "container": None}, "usage": usage})
        yield frame("message_stop", {"type": "message_stop"})

    def _start(self, identifier: str | None) -> Iterator[bytes]:
        self.started = True
        usage = {**usage_of(None), "input_tokens": self.input_tokens, "output_tokens": 1}
        message = skeleton(message_id(identifier), self.model, [], None, None, usage)
        yield frame("message_start", {"type": "message_start", "message": message})
        yield PING

    def _choice(self, choice: dict) -> Iterator[bytes]:
        if self.scanner.hit:
            return  # the answer ended at a stop sequence: the rest is drained for its usage
        delta = choice.get("delta") or {}
        reasoning = reasoning_of(delta)
        if reasoning:
            yield from self._block("thinking", thinking_block(""))
            yield self._delta({"type": "thinking_delta", "thinking": reasoning})
        if delta.get("content"):
            yield from self._text(self.scanner.feed(delta["content"]))
        for call in delta.get("tool_calls") or ():
            yield from self._tool(call)
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
            if not self.scanner.hit:
                yield from self._text(self.scanner.flush())

    def _text(self, text: str) -> Iterator[bytes]:
        if text:
            yield from self._block("text", text_block(""))
            yield self._delta({"type": "text_delta", "text": text})
        if self.scanner.hit:
            yield from self._close()

    def _tool(self, call: dict) -> Iterator[bytes]:
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self.tool_blocks:
            yield from self._close()
            yield from self._block("tool_use", {
                "type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                "input": {}, "caller": {"type": "direct"}})
            self.tool_blocks[position] = self.index
        if function.get("arguments") and self.tool_blocks[position] == self.index:
            yield self._delta({"type": "input_json_delta",
                               "partial_json": function["arguments"]})

    def _block(self, kind: str, start: dict[str, Any]) -> Iterator[bytes]:
        """Open a block of `kind` unless one is open already."""
        if self.open == kind and kind != "tool_use":
            return
        yield from self._close()
        self.index += 1
        self.open = kind
        yield frame("content_block_start", {"type": "content_block_start", "index": self.index,
                                            "content_block": start})

    def _delta(self, delta: dict) -> bytes:
        return frame("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                             "delta": delta})

    def _close(self) -> Iterator[bytes]:
        if self.open is None:
            return
        if self.open == "thinking":  # Anthropic ends every thinking block with its signature
            yield self._delta({"type": "signature_delta", "signature": ""})
        yield frame("content_block_stop", {"type": "content_block_stop", "index": self.index})
        self.open = None
