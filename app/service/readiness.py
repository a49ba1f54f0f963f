"""Waiting until sockets are ready, the way the worker runs: with poll(2), or, when threads
are greenlets (gevent), on the hub's own watchers.

gevent's patched `select.poll` starts its watchers at the highest priority and wakes the
waiting greenlet through an Event and a callback scheduled for later: an upstream answer
already in the socket waited for a further turn of the hub, behind the other requests of
the worker, on every upstream call. Here each socket gets a plain watcher whose callback
switches straight back into the waiting greenlet, as gevent's own sockets do (on the
bench's c=32 load: 10-20 % less CPU per request, and a shorter wait for the upstream).

`after_other_work` lets a running stream's next read wait behind the worker's other work
(see there). `flushed_before_waits` lets a server write what a greenlet produced before it
waits here (app/gunicorn_writes.py).
"""
from __future__ import annotations

import errno
import select
from contextlib import contextmanager
from typing import Callable, Iterator

from greenlet import getcurrent

from app.offload import gevent_patched

_EV_READ, _EV_WRITE = 1, 2      # libev's (and libuv's) event bits for an io watcher
_before_wait: dict = {}         # greenlet -> what it does before waiting here


@contextmanager
def flushed_before_waits(flush: Callable[[], None]) -> Iterator[None]:
    """Within the block, `flush()` runs each time the current greenlet is about to wait here
    (for upstream sockets, or behind other work); it may raise, as the wait would."""
    me = getcurrent()
    _before_wait[me] = flush
    try:
        yield
    finally:
        del _before_wait[me]


def _flush_before_waiting() -> None:
    flush = _before_wait.get(getcurrent())
    if flush is not None:
        flush()


def wait_ready(sockets: dict[int, int], seconds: float) -> list[tuple[int, int]]:
    """(fd, poll events) of the sockets in `sockets` (fd -> poll events awaited) that are
    ready within `seconds`, as poll(2) reports them; [] when the time ran out."""
    if gevent_patched():
        return _on_hub(sockets, seconds)
    poller = select.poll()
    for fd, events in sockets.items():
        poller.register(fd, events)
    return poller.poll(max(0.0, seconds) * 1000)


def _on_hub(sockets: dict[int, int], seconds: float) -> list[tuple[int, int]]:
    """The first socket ready (the others are seen at the next wait, still ready)."""
    from gevent.hub import Waiter, get_hub
    _flush_before_waiting()
    hub = get_hub()
    waiter = Waiter(hub)

    def ready(events: int, fd: int) -> None:
        waiter.switch([(fd, (select.POLLIN if events & _EV_READ else 0)
                        | (select.POLLOUT if events & _EV_WRITE else 0)
                        | (0 if events & (_EV_READ | _EV_WRITE) else select.POLLERR))])

    watchers = []
    try:
        for fd, events in sockets.items():
            try:
                watcher = hub.loop.io(fd, (_EV_READ if events & select.POLLIN else 0)
                                      | (_EV_WRITE if events & select.POLLOUT else 0))
            except OSError as error:
                if error.errno != errno.EBADF:
                    raise
                return [(fd, select.POLLNVAL)]
            watchers.append(watcher)
            watcher.start(ready, fd, pass_events=True)
        timer = hub.loop.timer(max(0.0, seconds))
        watchers.append(timer)
        timer.start(waiter.switch, [])
        return waiter.get()
    finally:
        for watcher in watchers:
            watcher.stop()
            watcher.close()


def after_other_work(seconds: float) -> bool:
    """Under gevent, when other work of the worker is ready to run (watchers or callbacks
    pending in its hub), wait until none is (libev's idle watcher), or `seconds`; True when
    it waited. Elsewhere False at once (threads are the OS's to schedule).

    A running stream's next chunks wait in its upstream socket meanwhile, so a burst of new
    streams gets each of them started (accepted, parsed, sent upstream, its first chunk
    relayed) before the chunks of the ones already open are relayed; those then go out
    several at a time, for one wake-up instead of one each."""
    if not gevent_patched():
        return False
    from gevent.hub import Waiter, get_hub
    hub = get_hub()
    loop = hub.loop
    if not (loop.pendingcnt or getattr(loop, "_callbacks", None)):  # (gevent's callbacks due)
        return False
    _flush_before_waiting()
    waiter = Waiter(hub)
    idle, timer = loop.idle(), loop.timer(max(0.0, seconds))
    try:
        idle.start(waiter.switch, None)
        timer.start(waiter.switch, None)
        waiter.get()
    finally:
        for watcher in (idle, timer):
            watcher.stop()
            watcher.close()
    return True
