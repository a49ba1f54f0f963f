"""Helicone: its asynchronous logging API for requests made elsewhere, so each request shows
up in Helicone without traffic passing through Helicone.

Every answer the proxy gives is in OpenAI's format whatever the provider, so it goes to the
OpenAI-format endpoint `/oai/v1/log`: the request (model, messages), the answer (or the
error body) with its status, and the timing. The user and metadata become Helicone's user id
and custom properties.
"""
from __future__ import annotations

import threading

from app.callbacks.facts import answered_model, ended_at
from app.callbacks.http import JsonPoster
from app.callbacks.queue import DeliveryError
from app.callbacks.settings import CallbackSettings
from app.jsonfast import dumps
from app.service.events import RequestEvent

DEFAULT_BASE = "https://api.worker.helicone.ai"


def _instant(unix_seconds: float) -> dict:
    milliseconds = int(round(unix_seconds * 1000))
    return {"seconds": milliseconds // 1000, "milliseconds": milliseconds % 1000}


def _meta(event: RequestEvent) -> dict[str, str]:
    meta = {"Helicone-Property-Request-Id": event.request_id,
            "Helicone-Property-Provider": event.provider or "none",
            "Helicone-Property-Cache": event.cache}
    if event.user:
        meta["Helicone-User-Id"] = event.user
    for key, value in (event.metadata or {}).items():
        text = value if isinstance(value, str) else dumps(value).decode()
        meta[f"Helicone-Property-{key}"] = text
    return meta


def log_request(event: RequestEvent) -> dict:
    """The body of one POST /oai/v1/log."""
    request = {"model": event.requested_model, "messages": event.messages or [],
               "stream": event.stream}
    if event.user:
        request["user"] = event.user
    if event.succeeded:
        answer = dict(event.response or {})
        answer["model"] = answered_model(event)
    else:
        answer = {"error": {"message": event.error_message, "type": event.error_type,
                            "param": None, "code": event.error_code}}
    timing = {"startTime": _instant(event.started_at), "endTime": _instant(ended_at(event))}
    if event.ttft_ms is not None:
        timing["timeToFirstToken"] = event.ttft_ms
    return {
        "providerRequest": {"url": "/v1/chat/completions", "json": request, "meta": _meta(event)},
        "providerResponse": {"json": answer, "status": event.status,
                             "headers": {"content-type": "application/json"}},
        "timing": timing,
    }


class HeliconeSink:
    """The API takes one request per call, so a batch goes out as parallel calls: one at a
    time, a service 50 ms away would cap logging at 20 requests a second per worker."""

    name = "helicone"
    batch_size = 32
    parallel = 8

    def __init__(self, config: CallbackSettings):
        self.url = config.url(self.name, "HELICONE_API_BASE", DEFAULT_BASE) + "/oai/v1/log"
        key = config.required(self.name, "HELICONE_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.poster = JsonPoster("Helicone", config.timeout, connections=self.parallel)

    def _post_each(self, events: list[RequestEvent], errors: dict[int, DeliveryError],
                   start: int) -> None:
        for index in range(start, len(events), self.parallel):
            try:
                self.poster.post(self.url, log_request(events[index]), self.headers)
            except DeliveryError as exc:
                errors[index] = exc

    def deliver(self, events: list[RequestEvent]) -> None:
        errors: dict[int, DeliveryError] = {}
        # Daemon threads, each bounded by the call timeout: a hung service cannot hold up
        # the process's exit.
        posters = [threading.Thread(target=self._post_each, args=(events, errors, start),
                                    daemon=True, name="helicone-post")
                   for start in range(min(self.parallel, len(events)))]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        if errors:
            last = errors[max(errors)]
            raise DeliveryError(str(last), any(e.transient for e in errors.values()),
                                [events[index] for index in sorted(errors)])

    def close(self, timeout: float) -> None:
        self.poster.close()
