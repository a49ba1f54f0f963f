"""The consumers of request events: each one enqueues and does its work off the request path.

A consumer has `handle(event)` (called once per finished request; must not block) and
`close(timeout)` (flush on graceful shutdown within `timeout` seconds), and may say
`after_answer = True`: nothing the client's next request depends on, so under gunicorn it is
handed the event after the answer is sent (app/service/events.answer_first).
"""
from __future__ import annotations

from typing import Protocol

from app.callbacks import build_callback_consumers
from app.keys.service import KeyService
from app.service.events import RequestEvent
from app.usage.ledger import build_ledger


class Consumer(Protocol):
    def handle(self, event: RequestEvent) -> None: ...

    def close(self, timeout: float) -> None: ...


def build_consumers(service) -> list[Consumer]:
    """The consumers this service's settings turn on."""
    return [build_ledger(service), KeyService(service.settings, service.router),
            *build_callback_consumers(service)]
