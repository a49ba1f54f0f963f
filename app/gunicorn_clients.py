"""Deadlines on slow clients, shared by both worker classes (app/gunicorn_worker.py for
gevent, app/gunicorn_thread_worker.py for gthread).

Every connection waits on its client at two points: for a request's headers, and for its
body. Both are bounded, so no client can hold a connection slot (or, under gthread, a
thread) for long by sending nothing, or sending slowly:
- headers: a new connection has SWITCHBOARD_HEADER_TIMEOUT seconds (default 10) to send its
  request's headers, then gets 408 and is closed; a kept-alive connection may idle for
  gunicorn's `keepalive` seconds before its next request, then is closed;
- body: once the headers are in, the whole body must arrive within SWITCHBOARD_BODY_TIMEOUT
  seconds (default 60), else 408 and the connection is closed. A body the app did not read to
  its end (refused early: 401, 413, 408 ...) also closes the connection: draining it could
  take as long as the client likes.
- room: when a worker's connections come within a few of `worker_connections`, the
  connections that have waited longest on their client (idle, or sending headers or a body)
  are closed to make room (408 to one that never sent a whole request), so a flood of idle
  or slow sockets cannot lock out real requests and `/health`.
"""
from __future__ import annotations

import math
import os
import socket
import time
import weakref
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Callable, Protocol

from gunicorn.http.errors import NoMoreData
from werkzeug.exceptions import RequestTimeout

from app.gunicorn_errors import write_json_error

HEADER_TIMEOUT = float(os.environ.get("SWITCHBOARD_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("SWITCHBOARD_BODY_TIMEOUT", "60"))
SLOW = "The client did not send its request in time."


class TooSlow(Exception):
    """A client ran out of time to send its request's headers or body."""


@dataclass
class Waiting:
    """A connection waiting on its client (each worker keeps them oldest first), whether it
    was closed to make room, and (gthread: the main thread ends it) by when it must be done
    and whether it is a new connection's first request."""

    sock: socket.socket
    evicted: bool = False
    deadline: float = math.inf
    fresh: bool = False


class Worker(Protocol):
    def waiting_on(self, sock: socket.socket, deadline: float = math.inf
                   ) -> AbstractContextManager[Waiting]:
        """Mark a wait on the client of `sock` (to be ended for room, or at `deadline`)."""

    def within(self, sock: socket.socket, seconds: float) -> AbstractContextManager[None]:
        """Raise TooSlow if what runs inside is still waiting on `sock` after `seconds`."""


def hang_up(waiting: Waiting) -> None:
    """End a wait on a client from outside it: 408 to a new connection that never sent a
    whole request (quietly for a kept-alive one: its client may be sending the next request
    just now, and would take the 408 for that request's answer), and an end of input that
    wakes the reader."""
    waiting.evicted = True
    try:
        if waiting.fresh:
            write_json_error(waiting.sock, 408, "Request Timeout", SLOW)
        waiting.sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass


def evict(waiting_by_owner: dict, count: int) -> None:
    """Hang up on the `count` connections that have waited longest (the dict is oldest
    first), to make room; their readers answer 408 or close."""
    for owner in list(waiting_by_owner)[:max(0, count)]:
        waiting = waiting_by_owner.pop(owner, None)
        if waiting is not None:
            waiting.fresh = False   # a reader that sees `evicted` answers for itself
            hang_up(waiting)


class ClientBody:
    """A request body read within a deadline. Until it has been read to its end, its
    request is marked to close the connection (gunicorn then answers `Connection: close`
    and hangs up after the response, instead of draining what is left)."""

    def __init__(self, req, worker: Worker, sock: socket.socket):
        length, chunked = _body_framing(req)
        # Not the request itself: with `req.body` this would be a reference cycle, freed only
        # by a full collection of the garbage collector, whose pauses hold every request of
        # a worker (hundreds at once with slow upstreams).
        self.request = weakref.ref(req)
        self.body = req.body
        self.left = length
        self.closes_anyway = req.must_close
        self.deadline = time.monotonic() + BODY_TIMEOUT
        self.worker = worker
        self.sock = sock
        self._set_complete(not chunked and not length)

    def _set_complete(self, complete: bool) -> None:
        self.complete = complete
        request = self.request()
        if request is not None:
            request.must_close = self.closes_anyway or not complete

    def read(self, size: int | None = None) -> bytes:
        return self._timed(self.body.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._timed(self.body.readline, size)

    def readlines(self, size: int | None = None) -> list[bytes]:
        lines = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self):
        return iter(self.readline, b"")

    def _timed(self, read: Callable[[int | None], bytes], size: int | None) -> bytes:
        if self.complete:
            return b""
        if self.left is not None and self.left <= _received(self.body):
            # Nearly every small body came with its headers: no wait on the client to bound.
            return self._counted(read(size), size)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(SLOW)
        with self.worker.waiting_on(self.sock, self.deadline) as waiting:
            try:
                with self.worker.within(self.sock, remaining):
                    data = read(size)
            except (TooSlow, NoMoreData, OSError):
                if waiting.evicted or time.monotonic() >= self.deadline:
                    raise RequestTimeout(SLOW) from None
                raise
        if waiting.evicted:
            raise RequestTimeout(SLOW)
        return self._counted(data, size)

    def _counted(self, data: bytes, size: int | None) -> bytes:
        if self.left is not None:
            self.left -= len(data)
            self._set_complete(self.left <= 0)
        elif not data or (size is not None and 0 <= len(data) < size):
            self._set_complete(True)
        return data


def _received(body) -> int:
    """How many bytes of a body of known length gunicorn already holds, received with the
    request's head: reading them cannot wait on the client."""
    unreader = getattr(body.reader, "unreader", None)
    return len(unreader.buf.getbuffer()) if unreader is not None else 0


def _body_framing(req) -> tuple[int | None, bool]:
    length = next((int(value) for name, value in req.headers if name == "CONTENT-LENGTH"), None)
    chunked = any(name == "TRANSFER-ENCODING" for name, _ in req.headers)
    return length, chunked
