"""PostHog: the official client, one `$ai_generation` event per request (PostHog's LLM
analytics shape), distinct_id from the request's user.

The client batches and posts from its own thread. Each batch from our queue is handed to it
and flushed, and the client reports failures through `on_error`; it makes no retries of its
own (`max_retries=0`) so that retries, backoff and dropping are decided in one place, our
queue. Its own per-failure log lines are silenced for the same reason: our queue reports
failures once a minute. `shutdown()` can block for long on a hung endpoint, so close() bounds it.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

from posthog import Posthog
from posthog.request import APIError

from app.callbacks.facts import (answered_model, distinct_id, event_uuid, facts,
                                 output_messages, seconds)
from app.callbacks.queue import DeliveryError, one_at_a_time
from app.callbacks.settings import CallbackSettings
from app.service.events import RequestEvent

DEFAULT_HOST = "https://us.i.posthog.com"
EVENT = "$ai_generation"


def properties(event: RequestEvent) -> dict:
    props = {k: v for k, v in facts(event).items() if k not in ("input", "output")}
    props.update({
        "$ai_trace_id": event.request_id,
        "$ai_model": answered_model(event),
        "$ai_provider": event.provider,
        "$ai_input": event.messages,
        "$ai_output_choices": output_messages(event),
        "$ai_input_tokens": event.prompt_tokens,
        "$ai_output_tokens": event.completion_tokens,
        "$ai_cache_read_input_tokens": event.cached_tokens,
        "$ai_cache_creation_input_tokens": event.cache_creation_tokens,
        "$ai_reasoning_tokens": event.reasoning_tokens,
        "$ai_total_cost_usd": event.cost,
        "$ai_latency": seconds(event.latency_ms),
        "$ai_http_status": event.status,
        "$ai_stop_reason": event.finish_reason,
        "$ai_is_error": not event.succeeded,
        "$ai_error": event.error_message,
        "$ai_stream": event.stream,
    })
    if not (event.user or event.key_id):
        props["$process_person_profile"] = False  # a request id is not a person
    return props


class PostHogSink:
    name = "posthog"
    batch_size = 100

    def __init__(self, config: CallbackSettings):
        key = config.required(self.name, "POSTHOG_API_KEY")
        host = config.url(self.name, "POSTHOG_HOST", DEFAULT_HOST)
        self.timeout = config.timeout
        self._errors: list[Exception] = []
        self.client = Posthog(key, host=host, on_error=self._on_error, max_retries=0,
                              timeout=config.timeout, flush_at=self.batch_size,
                              flush_interval=0.5, disable_geoip=True)
        logging.getLogger("posthog").setLevel(logging.CRITICAL)

    def _on_error(self, error: Exception, batch) -> None:
        self._errors.append(error)  # on the client's thread

    def deliver(self, events: list[RequestEvent]) -> None:
        self._errors.clear()
        for event in one_at_a_time(events):
            queued = self.client.capture(
                EVENT, distinct_id=distinct_id(event), properties=properties(event),
                timestamp=datetime.fromtimestamp(event.started_at, timezone.utc),
                uuid=event_uuid(event))
            if queued is None:
                raise DeliveryError("PostHog client refused the event (closed or full)")
        self.client.flush(timeout_seconds=self.timeout + 1)
        if self._errors:
            raise _delivery_error(self._errors[-1])
        if self.client.queue.unfinished_tasks:
            raise DeliveryError(f"PostHog did not answer within {self.timeout:g} s")

    def close(self, timeout: float) -> None:
        stopper = threading.Thread(target=self.client.shutdown, name="posthog-shutdown",
                                   daemon=True)
        stopper.start()
        stopper.join(timeout)


def _delivery_error(error: Exception) -> DeliveryError:
    if isinstance(error, APIError):
        status = error.status if isinstance(error.status, int) else 0
        permanent = 400 <= status < 500 and status not in (408, 429)
        return DeliveryError(f"PostHog answered HTTP {status}", transient=not permanent)
    return DeliveryError(f"PostHog unreachable: {type(error).__name__}")
