"""A background writer per process: items are enqueued on the request path (a lock and an
append) and written in batches by one thread, so a database round trip never delays a reply.
Under gevent that thread is a greenlet, so each batch is written on a native thread
(app/offload.py): a write blocking in C would otherwise hold up every request of the worker.

Nothing is dropped:
- a full queue blocks the enqueuing thread until the writer has made room (back-pressure:
  a database slower than the traffic slows requests down rather than losing their rows);
- a failed batch is kept and retried with backoff until it is written;
- `close(timeout)` (gunicorn's worker_exit, and interpreter exit for library use) writes
  everything still queued before the process ends.
What a killed process (SIGKILL, a worker timeout) or a database that stays unreachable past
the close timeout leaves unwritten is in the ledger's journal (app/usage/journal.py), which
another process replays.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Sequence

from app.offload import NativeThread

log = logging.getLogger("switchboard.writer")

IDLE_EXIT_SECONDS = 10.0    # an idle writer thread ends; the next item starts a new one
RETRY_MAX_SECONDS = 10.0
BLOCKED_WARNING_SECONDS = 5.0
EXIT_FLUSH_SECONDS = 10.0

_live: "weakref.WeakSet[BatchWriter]" = weakref.WeakSet()


class BatchWriter:
    def __init__(self, name: str, write: Callable[[Sequence[Any]], None], batch_size: int = 500,
                 flush_interval: float = 1.0, queue_size: int = 10_000):
        """`write` stores a batch or raises (then the same batch is retried)."""
        self.name = name
        self._write = write
        self._native = NativeThread()
        self.healthy = True         # False while writes fail
        self.batch_size, self.flush_interval, self.queue_size = batch_size, flush_interval, queue_size
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._items: list = []
        self._pending = 0           # enqueued and not yet written (queued + in flight)
        self._urgent = 0            # flush callers waiting: write now, do not wait for a batch
        self._thread: threading.Thread | None = None

    @property
    def full(self) -> bool:
        return len(self._items) >= self.queue_size

    def put(self, item: Any) -> None:
        """Enqueue one item; blocks only while the queue is full."""
        with self._cond:
            if len(self._items) >= self.queue_size:
                self._wait_for_room()
            self._items.append(item)
            self._pending += 1
            if self._thread is None:
                self._start()
            elif len(self._items) == 1 or len(self._items) >= self.batch_size:
                self._cond.notify_all()     # an idle writer starts its batch clock, or writes

    def _wait_for_room(self) -> None:
        blocked_since = time.monotonic()
        warned_at = blocked_since
        while len(self._items) >= self.queue_size:
            if self._thread is None:
                self._start()
            self._cond.wait(1.0)
            if time.monotonic() - warned_at >= BLOCKED_WARNING_SECONDS:
                warned_at = time.monotonic()
                log.warning("%s queue full (%d items) for %.0f s: requests wait for the writer",
                            self.name, self.queue_size, warned_at - blocked_since)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-writer", daemon=True)
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Write everything enqueued so far; True when done within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    if self._thread is None:
                        self._start()
                    self._cond.wait(remaining)
                return True
            finally:
                self._urgent -= 1

    def close(self, timeout: float) -> None:
        """Flush before the process ends; what cannot be written in time is logged."""
        if not self.flush(timeout):
            log.error("%s: %d items not written at shutdown (the database did not accept "
                      "them within %.1f s)", self.name, self._pending, timeout)

    def _take(self) -> list | None:
        """The next batch: when it is full, when the oldest item has waited flush_interval, or
        at once when someone flushes. None when the thread has been idle long enough to end."""
        with self._cond:
            idle_since = time.monotonic()
            batch_due: float | None = None
            while True:
                now = time.monotonic()
                if self._items:
                    batch_due = batch_due or now + self.flush_interval
                    if self._urgent or len(self._items) >= self.batch_size or now >= batch_due:
                        batch = self._items[:self.batch_size]
                        del self._items[:self.batch_size]
                        self._cond.notify_all()      # room for blocked putters
                        return batch
                    self._cond.wait(batch_due - now)
                elif now - idle_since >= IDLE_EXIT_SECONDS:
                    self._thread = None
                    return None
                else:
                    self._cond.wait(IDLE_EXIT_SECONDS - (now - idle_since))

    def _run(self) -> None:
        try:
            while (items := self._take()) is not None:
                self._write_until_done(items)
                with self._cond:
                    self._pending -= len(items)
                    self._cond.notify_all()
        finally:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None     # ended abnormally: the next put starts another

    def _write_until_done(self, batch: list) -> None:
        delay = 0.1
        while batch:
            try:
                self._native.call(self._write, batch)
                self.healthy = True
                return
            except Exception as exc:
                self.healthy = False
                log.error("%s: writing %d items failed (%s); retrying in %.1f s", self.name,
                          len(batch), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)


def _flush_all_at_exit() -> None:
    for writer in list(_live):
        writer.close(EXIT_FLUSH_SECONDS)


def _forget_parent_items() -> None:
    """A forked child starts empty: the parent still holds and writes its own items."""
    for writer in list(_live):
        writer._reset()


atexit.register(_flush_all_at_exit)
os.register_at_fork(after_in_child=_forget_parent_items)
