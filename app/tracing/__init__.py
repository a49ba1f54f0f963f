"""OpenTelemetry traces, exported as OTLP over HTTP/protobuf by the official SDK.

Configured by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER / _ARG, OTEL_SDK_DISABLED), which the SDK reads from the process
environment. Off when no endpoint is set: `tracer()` is then None and every caller skips its
span work with one test, so tracing costs the hot path nothing.

Spans leave through a batch processor on a background thread: a slow or absent collector
never slows or fails a request; failed exports are counted in /metrics
(`switchboard_trace_export_failures_total`), and `flush` empties the queue on graceful stop.
How a batch is encoded and sent, under gevent off the event loop: app/tracing/export.py.
Batches are up to 2,048 spans in a queue of 8,192 (the SDK's defaults are 512 and 2,048: the
HTTP post, not the spans in it, was most of a small batch's cost), unless
OTEL_BSP_MAX_EXPORT_BATCH_SIZE / OTEL_BSP_MAX_QUEUE_SIZE say otherwise.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

from app.tracing import export

BATCH_SIZE, QUEUE_SIZE = 2048, 8192  # spans (module doc)
_lock = threading.Lock()
_wanted: dict | None = None  # the service name, once tracing is on in this process tree
_provider = None
_tracer = None  # this process's; a forked child starts its own (_forget_after_fork)


def enabled_by(env: Mapping[str, str]) -> bool:
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(env: Mapping[str, str]) -> bool:
    """Turn tracing on when `env` asks for it; True when it is on. The exporter itself starts
    in each process on its first span, so that gunicorn's master, which loads the app, hands
    its workers no exporter thread across the fork."""
    global _wanted
    if enabled_by(env) and _wanted is None:
        _sdk()  # imported here, in the master: a worker's first request does not pay for it
        from app.tracing import lean_sdk
        lean_sdk.install()
        _wanted = {"service.name": env.get("OTEL_SERVICE_NAME") or "switchboard"}
        logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # failures go to /metrics
        os.register_at_fork(after_in_child=_forget_after_fork)
    return _wanted is not None


def tracer():
    """The proxy's tracer in this process, or None when tracing is off."""
    if _tracer is None and _wanted is not None:
        _start()
    return _tracer


def _forget_after_fork() -> None:
    global _provider, _tracer
    _provider = _tracer = None


def _start() -> None:
    global _provider, _tracer
    with _lock:
        if _tracer is not None:
            return
        Resource, TracerProvider, BatchSpanProcessor = _sdk()
        _provider = TracerProvider(resource=Resource.create(_wanted))  # OTEL_TRACES_SAMPLER
        _provider.add_span_processor(BatchSpanProcessor(export.exporter(),
                                                        **batch_sizes(os.environ)))
        from app.tracing.lean_sdk import LeanTracer
        _tracer = LeanTracer(_provider.get_tracer("switchboard"))


def batch_sizes(env: Mapping[str, str]) -> dict[str, int]:
    """The batch processor's sizes the standard variables leave unset (module doc)."""
    sizes = {}
    queue = env.get("OTEL_BSP_MAX_QUEUE_SIZE")
    if not queue:
        sizes["max_queue_size"] = queue = QUEUE_SIZE
    if not env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        try:
            sizes["max_export_batch_size"] = min(BATCH_SIZE, int(queue))
        except ValueError:  # the SDK warns, and keeps its default queue of 2,048
            sizes["max_export_batch_size"] = 512
    return sizes


def _sdk():
    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401 (export.py's)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    return Resource, TracerProvider, BatchSpanProcessor


def flush(timeout: float) -> None:
    """Send what the batch processor still holds (graceful stop)."""
    if _provider is not None:
        _provider.force_flush(int(timeout * 1000))
