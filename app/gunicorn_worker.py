"""gunicorn's gevent worker, hardened against slow and idle clients (the deadlines and the
room of app/gunicorn_clients.py), with a prompt graceful stop.

gunicorn's own gevent worker, told to stop (SIGTERM, a reload), waits for every connection's
greenlet, including keep-alive connections idling until their next request, for up to the
keep-alive time; a deploy then takes the whole graceful timeout, and gunicorn kills the
worker before it can flush its ledger rows. Here a stop hangs up at once on the connections
idle at that moment (as the gthread worker does); requests in progress, and connections
accepted before the listener closes, are served (gunicorn closes them after the response).

Each kept-alive connection takes its turn before reading its next request (`take_turns`).
A request's metrics and integration events are handed over once its answer is written
(app/service/events.answer_first).
Streamed responses are written as app/gunicorn_writes.py says.
"""
from __future__ import annotations

import math
import socket
from contextlib import contextmanager

import gevent
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.ggevent import GeventWorker as BaseGeventWorker

from app.gunicorn_clients import HEADER_TIMEOUT, SLOW, ClientBody, TooSlow, Waiting, evict
from app.gunicorn_config import freeze
from app.gunicorn_errors import write_json_error
from app.gunicorn_writes import Coalescing
from app.service.events import answer_first

HANG_UP = "the worker is stopping"


def take_turns() -> None:
    """Back to the hub until after its next poll, so every connection whose request or
    upstream answer is ready by then runs before this one goes on.

    A greenlet only lets the others run when it waits. With a client that sends its next
    request as soon as it has the answer and an upstream that answers at once, neither read
    waits: one connection was served up to ~60 times in a row while the worker's other
    connections waited (bench scenario 2, c=16: p99 20x the p50; about 3x with this).
    `gevent.sleep(0)` is not enough: its callback runs again before the hub polls. A timer
    due now fires after the poll, with the sockets found ready there."""
    hub = gevent.get_hub()
    timer = hub.loop.timer(0)
    try:
        hub.wait(timer)
    finally:
        timer.close()


class GeventWorker(BaseGeventWorker):
    def init_process(self):
        freeze(self.cfg)  # in the worker process: its settings are fixed from here on
        self.idle: set[gevent.Greenlet] = set()
        self.waiting: dict[gevent.Greenlet, Waiting] = {}  # oldest first
        self.served: set[gevent.Greenlet] = set()  # connections that finished a request
        self.clients: dict[gevent.Greenlet, socket.socket] = {}
        self.open = 0
        self.room = max(1, min(50, self.worker_connections // 20))
        super().init_process()

    def load_wsgi(self):
        super().load_wsgi()
        self.wsgi = Coalescing(self.wsgi)

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
        evict(self.waiting, self.open - (self.worker_connections - self.room))

    @contextmanager
    def waiting_on(self, sock: socket.socket, deadline: float = math.inf):
        """(`within` keeps the deadline here: the greenlet's own timer.)"""
        me = gevent.getcurrent()
        waiting = self.waiting[me] = Waiting(sock)
        try:
            yield waiting
        finally:
            self.waiting.pop(me, None)

    def within(self, sock: socket.socket, seconds: float) -> gevent.Timeout:
        return gevent.Timeout(seconds, TooSlow(SLOW))  # started by `with`, cancelled after

    @contextmanager
    def timeout_ctx(self):
        """Around the wait for a connection's next request: its headers within
        HEADER_TIMEOUT on a new connection, within `keepalive` on a kept-alive one, which
        first lets the worker's other connections take their turn."""
        me = gevent.getcurrent()
        fresh = me not in self.served
        self.idle.add(me)
        try:
            with self.waiting_on(self.clients[me]) as waiting:
                try:
                    with self.within(waiting.sock, HEADER_TIMEOUT if fresh else
                                     self.cfg.keepalive):
                        if not fresh:
                            take_turns()
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
        with answer_first():
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
