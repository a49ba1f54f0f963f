"""gunicorn's gthread worker with the slow-client deadlines and the room of
app/gunicorn_clients.py, as the gevent worker has them.

gunicorn gives each connection a thread as soon as it is accepted (the thread waits up to
5 s for a first byte) and lets that thread block on a request's headers and body for as
long as the client likes: a few slow clients held every thread. Here:
- a new connection waits for its first byte in the worker's poller, holding no thread;
  one that sends nothing within HEADER_TIMEOUT gets 408 and is closed;
- a thread reading a request's headers is ended by the main thread at the header deadline
  (408, closed): the socket's end of input wakes it;
- a body is read under socket timeouts that add up to BODY_TIMEOUT (408 from the app);
- near `worker_connections`, the connections that have waited longest on their client are
  closed to make room: idle ones in the poller first, then threads waiting on a client.
"""
from __future__ import annotations

import errno
import math
import selectors
import socket
import threading
import time
from contextlib import contextmanager
from functools import partial

from gunicorn.workers.gthread import TConn
from gunicorn.workers.gthread import ThreadWorker as BaseThreadWorker

from app.gunicorn_clients import (HEADER_TIMEOUT, SLOW, ClientBody, TooSlow, Waiting, evict,
                                  hang_up)
from app.gunicorn_config import freeze
from app.service.events import answer_first

ACCEPT_ERRORS = {errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED}  # nothing to accept


class ThreadWorker(BaseThreadWorker):
    def init_process(self):
        freeze(self.cfg)  # in the worker process: its settings are fixed from here on
        self.waiting: dict[int, Waiting] = {}   # thread id -> its wait on a client, oldest first
        self.waiting_lock = threading.Lock()
        self.room = max(1, min(50, self.worker_connections // 20))
        super().init_process()

    def accept(self, listener):
        """A new connection waits for its first byte in the poller, not in a thread."""
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno in ACCEPT_ERRORS:
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())
        conn.timeout = time.monotonic() + HEADER_TIMEOUT
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))
        self._make_room()

    def murder_pending(self):
        """Runs on the main thread at least once a second: new connections that sent nothing
        by their header deadline, and threads past theirs, get 408 and are closed."""
        now = time.monotonic()
        while self.pending_conns and self.pending_conns[0].timeout <= now:
            self._close_pending(self.pending_conns.popleft(), answer=True)
        with self.waiting_lock:
            overdue = [owner for owner, waiting in self.waiting.items()
                       if waiting.deadline <= now]
            ended = [self.waiting.pop(owner) for owner in overdue]
            for waiting in ended:   # marked under the lock: handle_request sees it
                waiting.evicted = True
        for waiting in ended:
            hang_up(waiting)

    def _close_pending(self, conn: TConn, answer: bool) -> None:
        self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        if answer:
            hang_up(Waiting(conn.sock, fresh=True))
        conn.close()

    def _make_room(self) -> None:
        excess = self.nr_conns - (self.worker_connections - self.room)
        while excess > 0 and (self.pending_conns or self.keepalived_conns):
            idle = self.pending_conns or self.keepalived_conns
            self._close_pending(idle.popleft(), answer=idle is self.pending_conns)
            excess -= 1
        with self.waiting_lock:
            evict(self.waiting, excess)

    def handle(self, conn):
        """A thread reads a request's headers until HEADER_TIMEOUT after its connection was
        accepted (a new one) or became readable (a kept-alive one); the main thread ends it
        there."""
        deadline = conn.timeout if not conn.initialized else time.monotonic() + HEADER_TIMEOUT
        me = threading.get_ident()
        conn.headers_wait = Waiting(conn.sock, deadline=deadline, fresh=not conn.initialized)
        with self.waiting_lock:
            self.waiting[me] = conn.headers_wait
        try:
            return super().handle(conn)
        finally:
            with self.waiting_lock:
                self.waiting.pop(me, None)

    def handle_request(self, req, conn):
        with self.waiting_lock:
            self.waiting.pop(threading.get_ident(), None)
            if conn.headers_wait.evicted:
                return False    # answered 408 by the main thread just now
        req.body = ClientBody(req, self, conn.sock)
        with answer_first():   # metrics and integration events after the answer is written
            return super().handle_request(req, conn)

    @contextmanager
    def waiting_on(self, sock: socket.socket, deadline: float = math.inf):
        """A body read: `within` bounds each wait for bytes, the main thread the whole."""
        me = threading.get_ident()
        waiting = Waiting(sock, deadline=deadline)
        with self.waiting_lock:
            self.waiting[me] = waiting
        try:
            yield waiting
        finally:
            with self.waiting_lock:
                self.waiting.pop(me, None)

    @contextmanager
    def within(self, sock: socket.socket, seconds: float):
        sock.settimeout(seconds)
        try:
            yield
        except TimeoutError:
            raise TooSlow(SLOW) from None
        finally:
            sock.settimeout(None)
