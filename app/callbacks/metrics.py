"""Prometheus metrics: one set per process, added up over gunicorn's workers at scrape time.

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set by gunicorn.conf.py before this module is
imported, so every worker writes its values to files there and GET /metrics (app/api/metrics.py)
sums them. Without it (tests, library use) the values live in this process.

Label values come from a bounded set: a model name a client invents is counted as "other",
so nobody can grow the number of series by sending made-up names.
"""
from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

from app.service.events import RequestEvent

REQUESTS = Counter("switchboard_requests", "Finished requests", ["model", "provider", "status"])
ERRORS = Counter("switchboard_request_errors", "Failed requests by error type",
                 ["model", "provider", "type"])
LATENCY = Histogram("switchboard_request_latency_seconds", "Whole request time, seconds",
                    ["model", "provider"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600))
TTFT = Histogram("switchboard_time_to_first_token_seconds",
                 "Streams: time until the first generated token, seconds", ["model", "provider"],
                 buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
OVERHEAD = Histogram("switchboard_overhead_seconds",
                     "Time the proxy itself added (total minus upstream wait), seconds",
                     ["provider"],
                     buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
TOKENS = Counter("switchboard_tokens", "Tokens by model and kind", ["model", "kind"])
COST = Counter("switchboard_cost_usd", "Cost billed, USD", ["model"])
SAVED = Counter("switchboard_cache_saved_cost_usd", "Cost cache hits saved, USD", ["model"])
CACHE = Counter("switchboard_cache_lookups", "Cache lookups by result", ["result"])
FALLBACKS = Counter("switchboard_fallbacks", "Fallback models tried", ["model"])
RETRIES = Counter("switchboard_retries", "Retries of the same model", ["model"])

QUEUE_DEPTH = Gauge("switchboard_callback_queue_depth", "Events waiting per integration",
                    ["integration"], multiprocess_mode="livesum")
CALLBACK_EVENTS = Counter("switchboard_callback_events",
                          "Integration events by outcome: sent, failed (given up after "
                          "retries or refused), dropped (oldest, queue full or shutdown)",
                          ["integration", "outcome"])
CALLBACK_ERRORS = Counter("switchboard_callback_errors", "Failed delivery attempts",
                          ["integration"])

_TOKEN_KINDS = ("prompt", "completion", "cached", "cache_creation", "reasoning")


@lru_cache(maxsize=16384)
def _series(metric, *labels: str):
    """A labelled series, looked up once: `labels()` costs more than the increment itself."""
    return metric.labels(*labels)


class MetricsConsumer:
    """Counts every finished request; cheap enough to run on the request's own thread
    (a few in-memory or mmap'd increments), after its answer is sent."""

    after_answer = True

    def __init__(self, known_models: set[str]):
        self.known_models = known_models

    def model_label(self, event: RequestEvent) -> str:
        name = event.requested_model
        if not name:
            return "none"
        return name if name in self.known_models or name == event.model else "other"

    def handle(self, event: RequestEvent) -> None:
        model, provider = self.model_label(event), event.provider or "none"
        _series(REQUESTS, model, provider, str(event.status)).inc()
        if event.error_type:
            _series(ERRORS, model, provider, event.error_type).inc()
        _series(LATENCY, model, provider).observe(event.latency_ms / 1000)
        if event.ttft_ms is not None:
            _series(TTFT, model, provider).observe(event.ttft_ms / 1000)
        if event.overhead_ms is not None:
            _series(OVERHEAD, provider).observe(max(0.0, event.overhead_ms) / 1000)
        for kind in _TOKEN_KINDS:
            count = getattr(event, f"{kind}_tokens")
            if count:
                _series(TOKENS, model, kind).inc(count)
        if event.cost:
            _series(COST, model).inc(event.cost)
        if event.saved_cost:
            _series(SAVED, model).inc(event.saved_cost)
        if event.cache != "off":
            _series(CACHE, event.cache).inc()
        if event.fallbacks:
            _series(FALLBACKS, model).inc(event.fallbacks)
        if event.retries:
            _series(RETRIES, model).inc(event.retries)

    def close(self, timeout: float) -> None:
        """Nothing is held: every value is written as it happens."""


def known_models(service) -> set[str]:
    """Names that may label a series: config aliases and registry models."""
    return ({d.model_name for d in service.settings.deployments}
            | {name for name, _ in service.registry.items()})
