"""gunicorn's gevent worker, with a graceful stop that does not wait on idle connections.

gunicorn's own gevent worker, told to stop (SIGTERM, a reload), waits for every connection's
greenlet, including keep-alive connections idling until their next request, for up to the
keep-alive time; a deploy then takes the whole graceful timeout, and gunicorn kills the
worker before it can flush its ledger rows. Here a stop hangs up at once on the connections
idle at that moment (as the gthread worker does); requests in progress, and connections
accepted before the listener closes, are served (gunicorn closes them after the response).
"""
from __future__ import annotations

from contextlib import contextmanager

import gevent
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.ggevent import GeventWorker as BaseGeventWorker

HANG_UP = "the worker is stopping"


class GeventWorker(BaseGeventWorker):
    def init_process(self):
        self.idle: set[gevent.Greenlet] = set()
        super().init_process()

    @contextmanager
    def timeout_ctx(self):
        """Around the wait for a connection's next request, when the connection is idle."""
        me = gevent.getcurrent()
        self.idle.add(me)
        try:
            with super().timeout_ctx():
                yield
        finally:
            self.idle.discard(me)

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
