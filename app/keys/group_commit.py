"""Writes that callers wait for, done for many callers at once (group commit).

Each caller still waits until its own item is in the store (a finished request is settled
before its answer's last byte leaves, as a client sending its next request at once
expects), but the items queued while one batch is written go together in the next one:
under load one write serves many requests. The batch is written by one of the callers
waiting for it, in its own thread (a greenlet under gevent): the store's connections and
the locks that order its writers belong to the request threads (a gevent lock cannot be
shared with a native thread).

The first caller to find no batch being written writes one (every item queued so far, its
own included); when it is done, the oldest caller still queued writes the next. So a caller
waits at most two batches, each bounded by the store's own bound; its request's own
deadline (app/storage/deadline.py) ends that wait sooner: its item, not taken yet, is
withdrawn and the caller told so; an item already taken waits for its batch. When a batch
fails, the items queued meanwhile fail with it at once.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable, Sequence

from app.storage.deadline import bounded

QUEUED, LEADING, DONE = "queued", "leading", "done"


class Withdrawn(TimeoutError):
    """The request's own deadline ended its wait before its item was written."""


class _Ticket:
    __slots__ = ("item", "state", "error", "wake")

    def __init__(self, item: Any):
        self.item = item
        self.state = QUEUED
        self.error: BaseException | None = None
        self.wake = threading.Event()


class GroupCommit:
    def __init__(self, write: Callable[[Sequence[Any]], Sequence[BaseException | None]]):
        """`write(items)` stores a batch (each of its waits bounded by the store) and says,
        item by item, None or what it failed with."""
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._busy = False           # a batch is being written

    def run(self, item: Any) -> None:
        """Write `item` (with whatever else is queued); raise what its write failed with."""
        ticket = _Ticket(item)
        with self._lock:
            self._queue.append(ticket)
            lead = not self._busy
            if lead:
                self._busy, ticket.state = True, LEADING
        if not lead:
            self._wait_for_turn(ticket)
        if ticket.state == LEADING:
            self._write_batch()
        if ticket.error is not None:
            raise ticket.error

    def _wait_for_turn(self, ticket: _Ticket) -> None:
        left = bounded(math.inf)   # the request's own deadline, if it has one
        if not ticket.wake.wait(None if left == math.inf else left):
            with self._lock:
                if ticket.state == QUEUED and ticket in self._queue:
                    self._queue.remove(ticket)
                    raise Withdrawn("the store did not take this write in time")
            ticket.wake.wait()   # taken by a batch: the store's own bound ends that

    def _write_batch(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        interrupted: BaseException | None = None
        try:
            errors = self._write([ticket.item for ticket in batch])
        except Exception as exc:   # the whole batch failed: each caller hears why
            errors = [exc] * len(batch)
        except BaseException as exc:   # the writer's own thread ends (GreenletExit): the
            interrupted = exc          # others hear of a failure, not of its ending
            errors = [ConnectionError("the writer of this batch was interrupted")] * len(batch)
        failure = next((error for error in errors if error is not None), None)
        with self._lock:
            following = self._queue[0] if self._queue and failure is None else None
            if following is None:
                # After a failure the items queued meanwhile fail with it, rather than each
                # batch waiting out the store's bound in turn.
                failed, self._queue = self._queue, []
                batch, errors = batch + failed, [*errors, *[failure] * len(failed)]
                self._busy = False
            else:
                following.state = LEADING
        for ticket, error in zip(batch, errors):
            ticket.error = error
            if ticket.state != LEADING:
                ticket.state = DONE
            ticket.wake.set()
        if following is not None:
            following.wake.set()
        if interrupted is not None:
            raise interrupted
