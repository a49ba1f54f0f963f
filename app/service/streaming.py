"""Turning a provider's event stream into OpenAI chat.completion.chunk dicts.

The provider's translator yields fragments; this module stamps every chunk with one
id/created/model, gives each choice its first `role: assistant` delta, keeps the last
usage seen, and emits the usage chunk only when the client asked for it.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

from urllib3.exceptions import HTTPError, TimeoutError as Urllib3Timeout

from app.errors import UpstreamError
from app.providers.base import Provider, StreamTranslator, completion_id
from app.service.sse import decoder_for

READ_SIZE = 65536


def read_events(response, stream_format: str, provider: Provider, stall_timeout: float):
    """(event, data) pairs from an open urllib3 response, as soon as each arrives."""
    decoder = decoder_for(stream_format)
    try:
        while True:
            piece = response.read1(READ_SIZE)
            if not piece:
                break
            yield from decoder.feed(piece)
    except Urllib3Timeout:
        raise UpstreamError(f"{provider.name} stream stalled: no data for {stall_timeout:g} s",
                            provider=provider.name, status=504, type="timeout_error",
                            code="stream_stalled") from None
    except (HTTPError, OSError) as exc:
        raise UpstreamError(f"{provider.name} stream was cut: {type(exc).__name__}",
                            provider=provider.name, status=502, code="stream_interrupted") from None
    yield from decoder.close()


class ChunkStream:
    """Normalised chunks for one streamed completion; `usage` holds the last usage seen."""

    def __init__(self, provider: str, model: str, include_usage: bool):
        self.provider = provider
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.usage: dict[str, Any] | None = None
        self.finished = False
        self._started: set[int] = set()

    def chunks(self, events, translator: StreamTranslator) -> Iterator[dict]:
        for event, data in events:
            for fragment in translator.on_event(event, data):
                yield from self._emit(fragment)
        for fragment in translator.on_end():
            yield from self._emit(fragment)
        if not self.finished:
            raise UpstreamError("the upstream stream ended before the model finished",
                                provider=self.provider, status=502, code="stream_truncated")
        if self.include_usage and self.usage is not None:
            yield self._chunk([], self.usage)

    def _emit(self, fragment: dict) -> Iterator[dict]:
        if fragment.get("usage"):
            self.usage = fragment["usage"]
        choices = fragment.get("choices") or []
        if not choices:
            return
        for choice in choices:
            index = choice.get("index", 0)
            if choice.get("finish_reason"):
                self.finished = True
            if index not in self._started:
                self._started.add(index)
                choice["delta"] = {"role": "assistant", **(choice.get("delta") or {})}
        yield self._chunk(choices, None)

    def _chunk(self, choices: list, usage: dict | None) -> dict:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": choices}
        if self.include_usage:
            chunk["usage"] = usage
        return chunk
