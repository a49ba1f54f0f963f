"""Blocking work moved off a gevent worker's hub.

Under gevent every "thread" the proxy starts is a greenlet on the worker's one OS thread. A
background writer that blocks in C (SQLite inserting a batch, fsync, unlink) therefore froze
every request of its worker for as long: 10-40 ms per ledger batch at 1,000 requests a
second, twice a second per worker, which made the p99 (bench/hubwatch.py shows such stalls
with their stacks). `NativeThread` runs those calls on a real OS thread of the process while
the calling greenlet waits cooperatively. Without gevent's patching (gthread workers, the
library) the caller is a real thread already and the call runs in place.

State those calls share with the requests' greenlets takes a `shared_lock` (short sections)
or a `SharedSemaphore` (held across waits), never a plain `threading.Lock`: gevent's patched
lock, released on the native thread, can leave the greenlets waiting for it asleep for good
(requests that took the ledger journal's lock while the writer's batch held it were never
answered, their connections stuck; SQLite writers queued behind the ledger's batch waited out
the store's whole timeout).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")
POLL_SECONDS = (0.0002, 0.005)   # first and longest pause of a wait on a SharedSemaphore


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


def _os_thread_local():
    from gevent.monkey import get_original
    return get_original("_thread", "_local")()


class SharedSemaphore:
    """A semaphore that request greenlets and NativeThread calls both hold across waits (the
    SQLite writer's turn, a pool's connections). Under gevent the greenlets queue among
    themselves on gevent's semaphore (woken at once, in turn) and the one at the head then
    takes a unit of the OS-guarded count, pausing cooperatively while a native thread holds
    it; the native thread polls that count alone. Elsewhere it is threading's semaphore."""

    def __init__(self, size: int) -> None:
        self._plain = None if gevent_patched() else threading.BoundedSemaphore(size)
        if self._plain is None:
            self._queue = threading.BoundedSemaphore(size)   # gevent's: greenlets only
            self._guard = shared_lock()
            self._free = size

    def acquire(self, timeout: float) -> bool:
        """True once a unit is held; False after `timeout` seconds without one."""
        if self._plain is not None:
            return self._plain.acquire(timeout=timeout)
        deadline = time.monotonic() + timeout
        native = NativeThread.running_here()
        if not native and not self._queue.acquire(timeout=timeout):
            return False
        pause = POLL_SECONDS[0]
        while True:
            with self._guard:
                if self._free:
                    self._free -= 1
                    return True
            if time.monotonic() >= deadline:
                if not native:
                    self._queue.release()
                return False
            (_os_sleep if native else time.sleep)(pause)
            pause = min(pause * 2, POLL_SECONDS[1])

    def release(self) -> None:
        if self._plain is not None:
            self._plain.release()
            return
        with self._guard:
            self._free += 1
        if not NativeThread.running_here():
            self._queue.release()


def _os_sleep(seconds: float) -> None:
    from gevent.monkey import get_original
    get_original("time", "sleep")(seconds)


class NativeThread:
    """One OS thread of its own per process (made at first use, after gunicorn's fork),
    running calls one at a time, so the thread-bound state they use (an SQLite connection)
    stays on one thread."""

    _marker = None   # an OS-thread local, set on the native threads (under gevent only)

    def __init__(self) -> None:
        self._pool = None
        self._pid: int | None = None

    @classmethod
    def running_here(cls) -> bool:
        """True on the OS thread of a NativeThread (under gevent), False on the hub's greenlets."""
        return cls._marker is not None and getattr(cls._marker, "native", False)

    @classmethod
    def _run_marked(cls, function: Callable[..., T], args: tuple) -> T:
        cls._marker.native = True
        return function(*args)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)`, its result or its exception, with only the calling greenlet
        waiting for it."""
        if not gevent_patched():
            return function(*args)
        if self._pid != os.getpid():
            from gevent.threadpool import ThreadPool
            self._pool, self._pid = ThreadPool(1), os.getpid()
        if NativeThread._marker is None:
            NativeThread._marker = _os_thread_local()
        return self._pool.apply(NativeThread._run_marked, (function, args))
