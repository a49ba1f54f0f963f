"""Sentry: every failure the proxy or its upstreams are to blame for, with the request's
context (model, provider, attempts, request id) and a breadcrumb per failed attempt.

`sentry_sdk.init` also installs the Flask and logging integrations, so proxy faults (an
exception logged by the error handler or a broken stream) reach Sentry with the HTTP request
attached. Everything sent passes `before_send`, which takes out every credential the proxy
knows and, under `redact_messages`, the request body. A client's own mistakes (bad input, an
unknown model, hanging up) are not errors of the proxy and are not sent.

Sentry's transport queues and sends from its own thread; each batch from our queue is flushed
before the next, and envelopes the transport could not deliver are reported back to our queue
(retried with the same event_id, which Sentry deduplicates).
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import sentry_sdk
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import BadDsn, Dsn

from app.callbacks.facts import distinct_id, ended_at, event_uuid, facts
from app.callbacks.queue import DeliveryError, one_at_a_time
from app.callbacks.redaction import Scrubber
from app.callbacks.settings import CallbackSettings
from app.config import ConfigError
from app.service.events import RequestEvent

_REPORTED_TYPES = ("api_error", "timeout_error")
# A provider refusing the proxy's own key (wrong, or without access): the operator must act.
_KEY_REFUSED = (401, 403)


def refused_key(event: RequestEvent) -> dict | None:
    """The last attempt a provider refused because of the proxy's key, if any."""
    return next((a for a in reversed(event.attempts)
                 if a.get("upstream_status") in _KEY_REFUSED), None)


def reportable(event: RequestEvent) -> bool:
    """Failures of the proxy or its upstreams, not of the client's request."""
    return (event.status >= 500 or event.error_type in _REPORTED_TYPES
            or event.error_code == "missing_api_key"
            or refused_key(event) is not None)


def _transport(timeout: float):
    class CountingTransport(HttpTransport):
        """Sentry's HTTP transport, counting the envelopes it could not deliver."""

        TIMEOUT = timeout
        lost = 0

        def on_dropped_event(self, reason: str) -> None:
            self.lost += 1

    return CountingTransport


def sentry_event(event: RequestEvent) -> dict:
    # A failed request has no answering deployment: name the one whose failure it was.
    blamed = refused_key(event) or (event.attempts[-1] if event.attempts else {})
    model = event.model or blamed.get("model") or event.requested_model
    context = {k: v for k, v in facts(event).items() if k not in ("input", "output", "metadata")}
    tags = {"model": model, "requested_model": event.requested_model,
            "provider": event.provider or blamed.get("provider"),
            "request_id": event.request_id, "status": event.status,
            "upstream_status": blamed.get("upstream_status"), "error_type": event.error_type,
            "error_code": event.error_code, "cache": event.cache, "stream": event.stream}
    report = {
        "event_id": event_uuid(event).replace("-", ""),
        "level": "error",
        "logger": "switchboard.requests",
        "timestamp": datetime.fromtimestamp(ended_at(event), timezone.utc),
        "message": f"{event.error_type}: {event.error_message}",
        "exception": {"values": [{
            "type": event.error_code or event.error_type, "value": event.error_message,
            "mechanism": {"type": "switchboard", "handled": True}}]},
        "fingerprint": ["switchboard", event.error_type or "", event.error_code or "",
                        model or ""],
        "tags": {k: str(v) for k, v in tags.items() if v is not None},
        "contexts": {"switchboard": context},
        "extra": {"metadata": event.metadata, "messages": event.messages},
        "breadcrumbs": {"values": [
            {"type": "http", "category": "upstream.attempt", "level": "warning",
             "message": f"{a.get('model')}: HTTP {a.get('status')}: {a.get('error')}",
             "data": a} for a in event.attempts]},
    }
    if event.user or event.key_id:
        report["user"] = {"id": distinct_id(event)}
    return report


class SentrySink:
    name = "sentry"
    batch_size = 10

    def __init__(self, config: CallbackSettings, scrubber: Scrubber):
        dsn = config.required(self.name, "SENTRY_DSN")
        try:
            Dsn(dsn)
        except BadDsn:
            raise ConfigError("callbacks: SENTRY_DSN is not a valid Sentry DSN") from None
        self.scrubber = scrubber
        self.redact_messages = config.redact_messages
        self.timeout = config.timeout
        for noisy in ("posthog", "switchboard.callbacks"):
            ignore_logger(noisy)  # their failures are counted and reported by our queues
        sentry_sdk.init(
            dsn=dsn, environment=config.optional("SENTRY_ENVIRONMENT"),
            default_integrations=False, auto_enabling_integrations=False,
            integrations=[FlaskIntegration(), DedupeIntegration(),
                          LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
            before_send=self._before_send,  # no personal data is sent by default
            auto_session_tracking=False,  # release-health sessions: not what this logs
            transport=_transport(config.timeout))
        self.client = sentry_sdk.get_client()

    accepts = staticmethod(reportable)

    def _before_send(self, event: dict, hint) -> dict:
        if self.redact_messages:
            (event.get("request") or {}).pop("data", None)
            (event.get("extra") or {}).pop("messages", None)
        return self.scrubber.value(event)

    def deliver(self, events: list[RequestEvent]) -> None:
        transport = self.client.transport
        lost_before = transport.lost
        for event in one_at_a_time(events):
            with sentry_sdk.isolation_scope() as scope:
                scope.clear_breadcrumbs()  # only this request's attempts
                sentry_sdk.capture_event(sentry_event(event))
        self.client.flush(timeout=self.timeout + 1)
        lost = transport.lost - lost_before
        if lost:
            raise DeliveryError(f"Sentry did not accept {lost} of {len(events)} events")

    def close(self, timeout: float) -> None:
        self.client.close(timeout=timeout)
        if sentry_sdk.get_client() is self.client:
            sentry_sdk.get_global_scope().set_client(None)
