"""Incremental decoders for upstream event streams (SSE and NDJSON).

Bytes arrive in arbitrary pieces (an event may be split across network reads, or many
events may share one read), so both decoders buffer until a complete event is seen.
"""
from __future__ import annotations

from typing import Iterator


class SSEDecoder:
    """Server-Sent Events per the WHATWG rules: `event`, multi-line `data`, comments, CR/LF/CRLF."""

    def __init__(self):
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, piece: bytes) -> Iterator[tuple[str | None, str]]:
        self._buffer += piece
        if b"\r" not in self._buffer:
            # Lines end with LF only (every provider's streams): split them all at once.
            *lines, self._buffer = self._buffer.split(b"\n")
            yield from self._lines(lines)
            return
        while True:
            line, found = self._next_line()
            if not found:
                return
            event = self._line(line)
            if event is not None:
                yield event

    def close(self) -> Iterator[tuple[str | None, str]]:
        """A final event that was not followed by a blank line still counts."""
        if self._buffer:
            leftover, self._buffer = self._buffer, b""
            event = self._line(leftover.decode("utf-8", "replace"))
            if event is not None:
                yield event
        if self._data:
            yield self._dispatch()

    def _lines(self, lines: list[bytes]) -> Iterator[tuple[str | None, str]]:
        """Whole lines; a `data` line, the most common one by far, read on the spot."""
        for line in lines:
            if line.startswith(b"data:"):
                self._data.append(line[6 if line[5:6] == b" " else 5:].decode("utf-8", "replace"))
                continue
            event = self._line(line.decode("utf-8", "replace"))
            if event is not None:
                yield event

    def _next_line(self) -> tuple[str, bool]:
        buffer = self._buffer
        lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
        if lf == -1 and cr == -1:
            return "", False
        if cr == -1 or (lf != -1 and lf < cr):
            index, end = lf, lf + 1
        elif cr + 1 == len(buffer):
            return "", False  # a CR at the end may be half of a CRLF: wait for more
        else:
            index, end = cr, cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
        self._buffer = buffer[end:]
        return buffer[:index].decode("utf-8", "replace"), True

    def _line(self, line: str) -> tuple[str | None, str] | None:
        if line == "":
            return self._dispatch() if self._data else self._reset_event()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _reset_event(self) -> None:
        self._event = None
        return None

    def _dispatch(self) -> tuple[str | None, str]:
        event = (self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return event


class NDJSONDecoder:
    """One JSON document per line (Cohere's v1 streams)."""

    def __init__(self):
        self._buffer = b""

    def feed(self, piece: bytes) -> Iterator[tuple[None, str]]:
        self._buffer += piece
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield None, line.decode("utf-8", "replace")

    def close(self) -> Iterator[tuple[None, str]]:
        if self._buffer.strip():
            yield None, self._buffer.decode("utf-8", "replace")
        self._buffer = b""


def decoder_for(stream_format: str):
    return NDJSONDecoder() if stream_format == "ndjson" else SSEDecoder()
