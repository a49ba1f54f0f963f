"""Supabase: one row per request in a table, through the PostgREST API Supabase exposes.

A batch is one bulk upsert keyed on request_id, so a retried delivery never duplicates a row.
It is a single POST, so app/callbacks/http.py does it; supabase-py would bring its own HTTP
stack (httpx, auth, realtime, storage clients) for that one call, with a 120 s default timeout
and no retries. The table's SQL is in the README ("Integrations").
"""
from __future__ import annotations

from datetime import datetime, timezone

from app.callbacks.http import JsonPoster
from app.callbacks.settings import CallbackSettings
from app.service.events import RequestEvent


def row(event: RequestEvent) -> dict:
    """The table's columns for one event."""
    return {
        "request_id": event.request_id,
        "created_at": datetime.fromtimestamp(event.started_at, timezone.utc).isoformat(),
        "status": event.status,
        "success": event.succeeded,
        "requested_model": event.requested_model,
        "model": event.model,
        "provider": event.provider,
        "deployment": event.deployment,
        "stream": event.stream,
        "messages": event.messages,
        "response": event.response,
        "finish_reason": event.finish_reason,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": event.prompt_tokens + event.completion_tokens,
        "cached_tokens": event.cached_tokens,
        "cache_creation_tokens": event.cache_creation_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "usage_estimated": event.usage_estimated,
        "cost": event.cost,
        "saved_cost": event.saved_cost,
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "overhead_ms": event.overhead_ms,
        "cache": event.cache,
        "attempts": event.attempts,
        "retries": event.retries,
        "fallbacks": event.fallbacks,
        "error_type": event.error_type,
        "error_code": event.error_code,
        "error_message": event.error_message,
        "end_user": event.user,
        "key_id": event.key_id,
        "key_alias": event.key_alias,
        "metadata": event.metadata,
    }


class SupabaseSink:
    name = "supabase"
    batch_size = 100

    def __init__(self, config: CallbackSettings):
        base = config.url(self.name, "SUPABASE_URL")
        key = config.required(self.name, "SUPABASE_KEY")
        self.url = f"{base}/rest/v1/{config.table()}?on_conflict=request_id"
        self.headers = {"apikey": key, "Authorization": f"Bearer {key}",
                        "Prefer": "resolution=merge-duplicates,return=minimal"}
        self.poster = JsonPoster("Supabase", config.timeout)

    def deliver(self, events: list[RequestEvent]) -> None:
        self.poster.post(self.url, [row(event) for event in events], self.headers)

    def close(self, timeout: float) -> None:
        self.poster.close()
