"""gunicorn's gevent worker, hardened against slow and idle clients, with a prompt graceful stop.

Every connection waits on its client at two points: for a request's headers, and for its
body. Both are bounded here, so no client can hold a connection slot for long by sending
nothing, or sending slowly:
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

gunicorn's own gevent worker, told to stop (SIGTERM, a reload), waits for every connection's
greenlet, including keep-alive connections idling until their next request, for up to the
keep-alive time; a deploy then takes the whole graceful timeout, and gunicorn kills the
worker before it can flush its ledger rows. Here a stop hangs up at once on the connections
idle at that moment (as the gthread worker does); requests in progress, and connections
accepted before the listener closes, are served (gunicorn closes them after the response).
"""
from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

import gevent
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.ggevent import GeventWorker as BaseGeventWorker
from werkzeug.exceptions import RequestTimeout

from app.gunicorn_errors import write_json_error

HANG_UP = "the worker is stopping"
HEADER_TIMEOUT = float(os.environ.get("SWITCHBOARD_HEADER_TIMEOUT", "10"))
BODY_TIMEOUT = float(os.environ.get("SWITCHBOARD_BODY_TIMEOUT", "60"))
SLOW = "The client did not send its request in time."


class TooSlow(Exception):
    """A client ran out of time to send its request's headers."""


@dataclass
class Waiting:
    """A connection waiting on its client (`GeventWorker.waiting` keeps them oldest first),
    and whether it was closed to make room."""

    sock: socket.socket
    evicted: bool = False


class ClientBody:
    """A request body read within a deadline. Until it has been read to its end, its
    request is marked to close the connection (gunicorn then answers `Connection: close`
    and hangs up after the response, instead of draining what is left)."""

    def __init__(self, req, worker: "GeventWorker", sock: socket.socket):
        length, chunked = _body_framing(req)
        self.req = req
        self.body = req.body
        self.left = length
        self.closes_anyway = req.must_close
        self.deadline = time.monotonic() + BODY_TIMEOUT
        self.worker = worker
        self.sock = sock
        self._set_complete(not chunked and not length)

    def _set_complete(self, complete: bool) -> None:
        self.complete = complete
        self.req.must_close = self.closes_anyway or not complete

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

    def _timed(self, read, size: int | None) -> bytes:
        if self.complete:
            return b""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(SLOW)
        with self.worker.waiting_on(self.sock) as waiting:
            try:
                with gevent.Timeout(remaining, TooSlow(SLOW)):
                    data = read(size)
            except (TooSlow, NoMoreData, OSError):
                if waiting.evicted or time.monotonic() >= self.deadline:
                    raise RequestTimeout(SLOW) from None
                raise
        if waiting.evicted:
            raise RequestTimeout(SLOW)
        if self.left is not None:
            self.left -= len(data)
            self._set_complete(self.left <= 0)
        elif not data or (size is not None and 0 <= len(data) < size):
            self._set_complete(True)
        return data


def _body_framing(req) -> tuple[int | None, bool]:
    length = next((int(value) for name, value in req.headers if name == "CONTENT-LENGTH"), None)
    chunked = any(name == "TRANSFER-ENCODING" for name, _ in req.headers)
    return length, chunked


class GeventWorker(BaseGeventWorker):
    def init_process(self):
        self.idle: set[gevent.Greenlet] = set()
        self.waiting: dict[gevent.Greenlet, Waiting] = {}  # oldest first
        self.served: set[gevent.Greenlet] = set()  # connections that finished a request
        self.clients: dict[gevent.Greenlet, socket.socket] = {}
        self.open = 0
        self.room = max(1, min(50, self.worker_connections // 20))
        super().init_process()

    def handle(self, listener, client, addr):
        me = gevent.getcurrent()
        self.open += 1
        self.clients[me] = client
        try:
            self._make_room()
            super().handle(listener, client, addr)
        finally:
            self.open -= 1
            self.served.discard(me)
            del self.clients[me]

    def _make_room(self) -> None:
        """Close the connections that have waited longest on their client while this worker
        is within `room` connections of its limit."""
        excess = self.open - (self.worker_connections - self.room)
        for greenlet in list(self.waiting)[:max(0, excess)]:
            waiting = self.waiting.pop(greenlet)
            waiting.evicted = True
            try:
                waiting.sock.shutdown(socket.SHUT_RD)  # wakes its greenlet with an end of input
            except OSError:
                pass

    @contextmanager
    def waiting_on(self, sock: socket.socket):
        me = gevent.getcurrent()
        waiting = self.waiting[me] = Waiting(sock)
        try:
            yield waiting
        finally:
            self.waiting.pop(me, None)

    @contextmanager
    def timeout_ctx(self):
        """Around the wait for a connection's next request: its headers within
        HEADER_TIMEOUT on a new connection, within `keepalive` on a kept-alive one."""
        me = gevent.getcurrent()
        fresh = me not in self.served
        self.idle.add(me)
        try:
            with self.waiting_on(self.clients[me]) as waiting:
                try:
                    with gevent.Timeout(HEADER_TIMEOUT if fresh else self.cfg.keepalive,
                                        TooSlow(SLOW)):
                        yield
                except TooSlow:
                    self._close_slow(waiting.sock, fresh)
                except (NoMoreData, OSError):
                    if not waiting.evicted:
                        raise
                    self._close_slow(waiting.sock, fresh)
        finally:
            self.idle.discard(me)

    @staticmethod
    def _close_slow(sock: socket.socket, fresh: bool) -> None:
        """End a connection whose request did not come: 408 to one that never sent a whole
        request, quietly for a kept-alive one (its client may be sending the next one just
        now, and would take the 408 for that request's answer). gunicorn closes it after."""
        if fresh:
            try:
                write_json_error(sock, 408, "Request Timeout", SLOW)
            except OSError:
                pass

    def handle_request(self, listener_name, req, sock, addr):
        req.body = ClientBody(req, self, sock)
        super().handle_request(listener_name, req, sock, addr)
        self.served.add(gevent.getcurrent())

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        gevent.get_hub().loop.run_callback(self._hang_up_idle)

    def _hang_up_idle(self) -> None:
        """Runs in the hub, while no connection's greenlet runs: one in `idle` now is blocked
        waiting for its next request, so ending it cuts nothing short. (A kill sent from the
        signal handler lands later, possibly after the greenlet has woken with a request and
        is waiting on the upstream: that request then failed with a 500.)"""
        for waiting in list(self.idle):
            if waiting in self.idle and not waiting.dead:
                # NoMoreData is how gunicorn ends a connection quietly (as a client that left)
                waiting.throw(NoMoreData(HANG_UP))
