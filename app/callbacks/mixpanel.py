"""Mixpanel: the official client, one tracked event per request with the request's facts as
properties, distinct_id from the request's user.

The client builds each event (token, time, $insert_id, library properties) and its Consumer
posts them; a batch goes as one JSON array to /track, the way the client's own
BufferedConsumer sends (at most 50 per call). The Consumer is synchronous and has no timeout
unless given one, so it gets ours; its own retries (https only) are off because our queue
retries. MIXPANEL_API_HOST is a host name (https, as the client builds it) or a full
http(s):// address (self-hosted or test servers).
"""
from __future__ import annotations

from mixpanel import Consumer, Mixpanel, MixpanelException

from app.callbacks.facts import distinct_id, event_uuid, facts
from app.callbacks.queue import DeliveryError, one_at_a_time
from app.callbacks.settings import CallbackSettings
from app.service.events import RequestEvent

EVENT = "LLM Request"
DEFAULT_HOST = "api.mixpanel.com"


class _Collector:
    """A Mixpanel consumer that keeps the messages the client builds, to send as one batch."""

    def __init__(self):
        self.messages: list[str] = []

    def send(self, endpoint, json_message, api_key=None, api_secret=None):
        self.messages.append(json_message)


def properties(event: RequestEvent) -> dict:
    # Mixpanel's $insert_id deduplicates retried deliveries; 32 hex characters fit its limit.
    return {**facts(event), "time": event.started_at,
            "$insert_id": event_uuid(event).replace("-", "")}


class MixpanelSink:
    name = "mixpanel"
    batch_size = 50  # the most /track takes in one call

    def __init__(self, config: CallbackSettings):
        self.token = config.required(self.name, "MIXPANEL_TOKEN")
        host = config.optional("MIXPANEL_API_HOST", DEFAULT_HOST)
        address = {"events_url": f"{host.rstrip('/')}/track"} if "://" in host \
            else {"api_host": host}
        self.consumer = Consumer(request_timeout=config.timeout, retry_limit=0, **address)

    def deliver(self, events: list[RequestEvent]) -> None:
        collector = _Collector()
        client = Mixpanel(self.token, consumer=collector)
        for event in one_at_a_time(events):
            client.track(distinct_id(event), EVENT, properties(event))
        try:
            self.consumer.send("events", "[" + ",".join(collector.messages) + "]")
        except MixpanelException as exc:
            # "Mixpanel error: ..." is Mixpanel refusing the data; anything else is transport.
            refused = str(exc).startswith("Mixpanel error")
            raise DeliveryError(f"Mixpanel: {_summary(exc)}", transient=not refused) from None

    def close(self, timeout: float) -> None:
        """Nothing is held between calls: each batch was sent synchronously."""


def _summary(exc: MixpanelException) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else str(exc)[:300]
