"""The facts of one request event, named once for the integrations that take flat properties
(PostHog adds its `$ai_*` names on top; Mixpanel takes them as they are)."""
from __future__ import annotations

import uuid

from app.service.events import RequestEvent

_EVENT_NAMESPACE = uuid.UUID("6f1d3c52-8f0e-4d0a-9a57-5b8f3f6c1e21")


def event_uuid(event: RequestEvent) -> str:
    """A stable UUID per request id: a retried delivery carries the same id, so services that
    deduplicate on it (PostHog, Mixpanel's $insert_id, Sentry's event_id) keep one copy."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, event.request_id))


def distinct_id(event: RequestEvent) -> str:
    """Who the event is about: the request's `user`, else the virtual key, else the request."""
    return event.user or event.key_id or event.request_id


def answered_model(event: RequestEvent) -> str | None:
    return event.model or event.requested_model


def output_messages(event: RequestEvent) -> list[dict] | None:
    """The assistant messages of the final answer (text or tool calls); None when absent or
    redacted."""
    choices = (event.response or {}).get("choices") or []
    messages = [c["message"] for c in choices if isinstance(c, dict) and c.get("message")]
    return messages or None


def ended_at(event: RequestEvent) -> float:
    return event.started_at + event.latency_ms / 1000


def seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else round(milliseconds / 1000, 6)


def facts(event: RequestEvent) -> dict:
    """Everything an analytics event says about a request, as flat properties."""
    return {
        "request_id": event.request_id,
        "requested_model": event.requested_model,
        "model": answered_model(event),
        "provider": event.provider,
        "deployment": event.deployment,
        "stream": event.stream,
        "status": event.status,
        "is_error": not event.succeeded,
        "error_type": event.error_type,
        "error_code": event.error_code,
        "error": event.error_message,
        "finish_reason": event.finish_reason,
        "input_tokens": event.prompt_tokens,
        "output_tokens": event.completion_tokens,
        "total_tokens": event.prompt_tokens + event.completion_tokens,
        "cached_tokens": event.cached_tokens,
        "cache_creation_tokens": event.cache_creation_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "usage_estimated": event.usage_estimated,
        "cost_usd": event.cost,
        "cost_unknown": event.cost_unknown,
        "saved_cost_usd": event.saved_cost,
        "latency_s": seconds(event.latency_ms),
        "time_to_first_token_s": seconds(event.ttft_ms),
        "overhead_ms": event.overhead_ms,
        "cache": event.cache,
        "retries": event.retries,
        "fallbacks": event.fallbacks,
        "attempts": event.attempts,
        "user": event.user,
        "key_id": event.key_id,
        "key_alias": event.key_alias,
        "metadata": event.metadata,
        "input": event.messages,
        "output": output_messages(event),
    }
