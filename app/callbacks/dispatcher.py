"""Hands each finished request's event to the integrations configured for its outcome.

Runs on the request's thread, so it only appends to each integration's queue; shaping,
redaction and sending happen on the queues' threads.
"""
from __future__ import annotations

import threading
import time

from app.callbacks.queue import DeliveryQueue
from app.service.events import RequestEvent


class Dispatcher:
    after_answer = True   # the integrations' queues: nothing the client waits for

    def __init__(self, queues: dict[str, DeliveryQueue], success: tuple[str, ...],
                 failure: tuple[str, ...]):
        self.queues = queues
        self.success = [queues[name] for name in success]
        self.failure = [queues[name] for name in failure]

    def handle(self, event: RequestEvent) -> None:
        if not event.callbacks:
            return  # the client opted out, and the operator allows it
        for queue in self.success if event.succeeded else self.failure:
            accepts = getattr(queue.sink, "accepts", None)
            if accepts is None or accepts(event):
                queue.put(event)

    def close(self, timeout: float) -> None:
        """Flush every queue at once, so one hung service cannot use up the others' time.
        Each queue stops delivering a little before the deadline, to count and log what it
        could not deliver before the process goes."""
        deadline = time.monotonic() + timeout
        delivering = max(0.0, timeout - min(0.5, timeout / 10))
        closers = [threading.Thread(target=queue.close, args=(delivering,), daemon=True,
                                    name=f"close-{queue.name}") for queue in self.queues.values()]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(max(0.0, deadline - time.monotonic()))
