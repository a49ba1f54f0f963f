"""Blocking work moved off a gevent worker's hub.

Under gevent every "thread" the proxy starts is a greenlet on the worker's one OS thread. A
background writer that blocks in C (SQLite inserting a batch, fsync, unlink) therefore froze
every request of its worker for as long: 10-40 ms per ledger batch at 1,000 requests a
second, twice a second per worker, which made the p99 (bench/hubwatch.py shows such stalls
with their stacks). `NativeThread` runs those calls on a real OS thread of the process while
the calling greenlet waits cooperatively. Without gevent's patching (gthread workers, the
library) the caller is a real thread already and the call runs in place.

State those calls share with the requests' greenlets takes a `shared_lock`, never a plain
`threading.Lock`: gevent's patched lock, released on the native thread, can leave the
greenlets waiting for it asleep for good (requests that took the ledger journal's lock while
the writer's batch held it were never answered, their connections stuck).
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def gevent_patched() -> bool:
    """True in a process whose threads are greenlets (gunicorn.conf.py patches gevent
    workers before the app loads)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def shared_lock():
    """A lock that greenlets and NativeThread calls both take: an OS lock under gevent (gevent's
    own does not always wake a greenlet when a native thread releases it). Only around short
    sections that never wait (no sleep, no socket): a greenlet blocked on it holds up its
    worker's hub, for as long as such a section lasts."""
    if gevent_patched():
        from gevent.monkey import get_original
        return get_original("_thread", "allocate_lock")()
    return threading.Lock()


class NativeThread:
    """One OS thread of its own per process (made at first use, after gunicorn's fork),
    running calls one at a time, so the thread-bound state they use (an SQLite connection)
    stays on one thread."""

    def __init__(self) -> None:
        self._pool = None
        self._pid: int | None = None

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)`, its result or its exception, with only the calling greenlet
        waiting for it."""
        if not gevent_patched():
            return function(*args)
        if self._pid != os.getpid():
            from gevent.threadpool import ThreadPool
            self._pool, self._pid = ThreadPool(1), os.getpid()
        return self._pool.apply(function, args)
