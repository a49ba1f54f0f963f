"""One integration's bounded queue and the background thread that delivers from it.

Requests only append to the queue; delivery, retries and waiting on a slow service happen on
this thread, so a slow, down or failing service never delays or fails a request. When the
service is down for long the queue fills and the oldest events make room for new ones
(counted). Failures are counted and reported in one log line a minute, not one per request.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from typing import Callable, Protocol

from app.callbacks.metrics import CALLBACK_ERRORS, CALLBACK_EVENTS, QUEUE_DEPTH
from app.service.events import RequestEvent

log = logging.getLogger("switchboard.callbacks")
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
REPORT_INTERVAL_SECONDS = 60.0
# How long the first event of a batch waits for others: one call per batch, not per event,
# is most of what logging costs the proxy's CPU at low and moderate load.
LINGER_SECONDS = 0.2


def one_at_a_time(events: list[RequestEvent]):
    """The events, with a pause after each that lets request threads run. Shaping a batch is
    many small pieces of Python work; done in one go it holds the interpreter lock and would
    delay requests by whole switch intervals (5 ms) at a time."""
    for event in events:
        yield event
        time.sleep(0)


class DeliveryError(Exception):
    """A delivery that did not go through; `transient` ones are retried with backoff.
    `undelivered` names the events still to send when the others went through."""

    def __init__(self, message: str, transient: bool = True,
                 undelivered: list[RequestEvent] | None = None):
        super().__init__(message)
        self.transient = transient
        self.undelivered = undelivered


class Sink(Protocol):
    name: str
    batch_size: int

    def deliver(self, events: list[RequestEvent]) -> None:
        """Send these events; raise DeliveryError when they did not arrive."""

    def close(self, timeout: float) -> None:
        """Release the client within `timeout` seconds."""


class FailureReport:
    """Counts failures and logs a summary at most once per interval."""

    def __init__(self, name: str, clean: Callable[[str], str]):
        self.name = name
        self.clean = clean
        self._lock = threading.Lock()
        self._next_report = 0.0
        self.failed_attempts = self.given_up = self.dropped = 0
        self.last_error = ""

    def note(self, failed_attempts: int = 0, given_up: int = 0, dropped: int = 0,
             error: str = "") -> None:
        with self._lock:
            self.failed_attempts += failed_attempts
            self.given_up += given_up
            self.dropped += dropped
            self.last_error = error or self.last_error
            now = time.monotonic()
            if now < self._next_report:
                return
            self._next_report = now + REPORT_INTERVAL_SECONDS
            counts = (self.failed_attempts, self.given_up, self.dropped, self.last_error)
            self.failed_attempts = self.given_up = self.dropped = 0
        log.warning("%s: %d failed deliveries, %d events given up, %d dropped since the last "
                    "report; last error: %s", self.name, counts[0], counts[1], counts[2],
                    self.clean(counts[3]) or "none")


class DeliveryQueue:
    def __init__(self, sink: Sink, size: int, max_retries: int,
                 prepare: Callable[[RequestEvent], RequestEvent],
                 clean: Callable[[str], str]):
        self.sink = sink
        self.name = sink.name
        self.size = size
        self.max_retries = max_retries
        self.prepare = prepare
        self.report = FailureReport(sink.name, clean)
        self._events: deque[RequestEvent] = deque()
        self._cond = threading.Condition()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None     # set by close()
        self._depth = QUEUE_DEPTH.labels(self.name)
        self._sent = CALLBACK_EVENTS.labels(self.name, "sent")
        self._failed = CALLBACK_EVENTS.labels(self.name, "failed")
        self._dropped = CALLBACK_EVENTS.labels(self.name, "dropped")
        self._errors = CALLBACK_ERRORS.labels(self.name)

    def put(self, event: RequestEvent) -> None:
        """Called on the request's thread: never blocks beyond a short lock."""
        dropped = 0
        with self._cond:
            if self._deadline is not None:
                dropped = 1
            else:
                self._start_in_this_process()
                if len(self._events) >= self.size:
                    self._events.popleft()
                    dropped = 1
                self._events.append(event)
                waiting = len(self._events)
                self._depth.set(waiting)
                if waiting == 1 or waiting >= self.sink.batch_size:
                    self._cond.notify()  # wake for a first event or a full batch only
        if dropped:
            self._dropped.inc()
            self.report.note(dropped=1, error="queue full")

    def _start_in_this_process(self) -> None:
        """Start the thread on first use in each process: threads do not survive gunicorn's
        fork, and the service is built in the master before it forks its workers."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._events.clear()
        self._thread = threading.Thread(target=self._run, name=f"callbacks-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._events and self._deadline is None:
                    self._cond.wait()
                linger_until = time.monotonic() + LINGER_SECONDS
                while (len(self._events) < self.sink.batch_size and self._deadline is None
                       and time.monotonic() < linger_until):
                    self._cond.wait(linger_until - time.monotonic())
                if not self._events or self._past_deadline():
                    return
                batch = [self._events.popleft()
                         for _ in range(min(self.sink.batch_size, len(self._events)))]
                self._depth.set(len(self._events))
            self._deliver(batch)

    def _deliver(self, batch: list[RequestEvent]) -> None:
        prepared = []
        for event in one_at_a_time(batch):
            try:
                prepared.append(self.prepare(event))
            except Exception as exc:  # this event cannot be shaped: retrying cannot help
                self._give_up([event], f"could not prepare an event: {type(exc).__name__}")
        if not prepared:
            return
        attempt, pending = 0, prepared
        while True:
            try:
                self.sink.deliver(pending)
            except Exception as exc:
                self._errors.inc()
                undelivered = getattr(exc, "undelivered", None)
                if undelivered is not None:  # the others arrived: only these are retried
                    self._sent.inc(len(pending) - len(undelivered))
                    pending = undelivered
                transient = getattr(exc, "transient", False)
                error = str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__
                if not transient or attempt >= self.max_retries or not self._pause(attempt):
                    self._give_up(pending, error)
                    return
                self.report.note(failed_attempts=1, error=error)
                attempt += 1
                continue
            self._sent.inc(len(pending))
            return

    def _give_up(self, batch: list[RequestEvent], error: str) -> None:
        self._failed.inc(len(batch))
        self.report.note(failed_attempts=1, given_up=len(batch), error=error)

    def _pause(self, attempt: int) -> bool:
        """Back off before a retry; False when shutdown leaves no time for it."""
        wait = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** attempt)
        wait *= random.uniform(0.75, 1.25)
        with self._cond:
            if self._deadline is not None and time.monotonic() + wait >= self._deadline:
                return False
            end = time.monotonic() + wait
            while time.monotonic() < end:
                self._cond.wait(end - time.monotonic())
                if self._deadline is not None and time.monotonic() + 0.05 >= self._deadline:
                    return False
        return True

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def close(self, timeout: float) -> None:
        """Deliver what is queued within `timeout` seconds, then release the sink; what is
        left then is counted as dropped."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._deadline = deadline
            self._cond.notify_all()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = len(self._events) if self._pid == os.getpid() else 0
            self._events.clear()
            self._depth.set(0)
        if left:
            self._dropped.inc(left)
            log.warning("%s: %d events not delivered before shutdown", self.name, left)
        try:
            self.sink.close(max(0.0, deadline - time.monotonic()))
        except Exception:
            log.exception("%s: closing its client failed", self.name)
