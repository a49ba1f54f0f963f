"""How a gevent worker writes an event stream (`text/event-stream`, the completion faces'
streams): what the app produces without waiting goes out in one write, made just before it
waits.

gunicorn writes each piece the app yields as it comes: a system call (and, through gevent's
sendall, a second one) per piece. A stream whose upstream chunks arrived together (a burst
of new streams held the running ones back: app/service/readiness.after_other_work; a slow
client; a cache hit replayed) was written a chunk at a time. Here the pieces are kept until
the app's greenlet is about to wait (app/service/readiness.flushed_before_waits) or ends, so
a chunk never waits for the next one; a stream that is read chunk by chunk is written chunk
by chunk, as before. An event stream waits only there (its upstream, or behind other work);
other bodies without a length (app/api/keepalive.py's whitespace, which waits on an event)
are written as gunicorn writes them.
"""
from __future__ import annotations

from contextlib import suppress
from typing import Any, Callable, Iterable, Iterator

from app.errors import ClientDisconnected
from app.service.readiness import flushed_before_waits


class Coalescing:
    """The WSGI app `app`, its streamed bodies written as described above (gunicorn's
    `start_response` is bound to the response it writes with); otherwise the app itself
    (gunicorn.conf.py reads its `extensions`)."""

    def __init__(self, app: Callable):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        body = self.app(environ, start_response)
        response = getattr(start_response, "__self__", None)
        if (response is None or response.response_length is not None
                or isinstance(body, (list, tuple)) or not event_stream(response.headers)):
            return body
        return Coalesced(body, response.write)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)


def event_stream(headers: list[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-type" and value.startswith("text/event-stream")
               for name, value in headers)


class Coalesced:
    """A streamed body that writes itself (gunicorn's loop over it finds nothing to write)."""

    def __init__(self, body: Iterable[bytes], write: Callable[[bytes], Any]):
        self._body = body
        self._write = write
        self._pending: list[bytes] = []

    def __iter__(self) -> Iterator[bytes]:
        try:
            with flushed_before_waits(self._flush_while_running):
                for piece in self._body:
                    self._pending.append(piece)
        except Exception:
            with suppress(OSError):   # what came before the failure, as gunicorn wrote it
                self._send()
            raise
        self._send()  # a client gone raises OSError to gunicorn, as its own write would
        yield from ()

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()

    def _flush_while_running(self) -> None:
        """Inside the app's stream: a client gone is the hang-up the app already handles."""
        try:
            self._send()
        except OSError:
            raise ClientDisconnected() from None

    def _send(self) -> None:
        pending = self._pending
        if pending:
            data = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self._write(data)
