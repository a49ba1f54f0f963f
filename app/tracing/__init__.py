"""OpenTelemetry traces, exported as OTLP over HTTP/protobuf by the official SDK.

Configured by the standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER / _ARG, OTEL_SDK_DISABLED), which the SDK reads from the process
environment. Off when no endpoint is set: `tracer()` is then None and every caller skips its
span work with one test, so tracing costs the hot path nothing.

Spans leave through a batch processor on a background thread: a slow or absent collector
never slows or fails a request; failed exports are counted in /metrics
(`switchboard_trace_export_failures_total`), and `flush` empties the queue on graceful stop.
Under gevent that thread is a greenlet on the workers' own event loop, so each batch is encoded
and sent from a real OS thread of gevent's pool (`_off_the_loop`): the loop keeps serving
requests meanwhile, and batches can be the SDK's full size (512 spans, or
OTEL_BSP_MAX_EXPORT_BATCH_SIZE), which pays for one HTTP post per 512 spans instead of per 32.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Mapping, Sequence

log = logging.getLogger("switchboard")

_lock = threading.Lock()
_wanted: dict | None = None  # the service name, once tracing is on in this process tree
_pid: int | None = None
_provider = None
_tracer = None


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
        _wanted = {"service.name": env.get("OTEL_SERVICE_NAME") or "switchboard"}
        logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # failures go to /metrics
    return _wanted is not None


def tracer():
    """The proxy's tracer in this process, or None when tracing is off."""
    if _wanted is None:
        return None
    if _pid != os.getpid():
        _start()
    return _tracer


def _start() -> None:
    global _pid, _provider, _tracer
    with _lock:
        if _pid == os.getpid():
            return
        OTLPSpanExporter, Resource, TracerProvider, BatchSpanProcessor = _sdk()
        _provider = TracerProvider(resource=Resource.create(_wanted))  # OTEL_TRACES_SAMPLER
        _provider.add_span_processor(BatchSpanProcessor(_counted(OTLPSpanExporter())))
        _tracer = _provider.get_tracer("switchboard")
        _pid = os.getpid()


def _sdk():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    return OTLPSpanExporter, Resource, TracerProvider, BatchSpanProcessor


def flush(timeout: float) -> None:
    """Send what the batch processor still holds (graceful stop)."""
    if _provider is not None and _pid == os.getpid():
        _provider.force_flush(int(timeout * 1000))


def _counted(exporter):
    """The exporter, with its failures counted for /metrics instead of raised."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from prometheus_client import Counter

    failures = Counter("switchboard_trace_export_failures",
                       "Span batches the OTLP exporter could not deliver")

    send = _off_the_loop(exporter.export)

    class CountingExporter(SpanExporter):
        def export(self, spans: Sequence) -> SpanExportResult:
            try:
                result = send(spans)
            except Exception:
                log.debug("span export failed", exc_info=True)
                result = SpanExportResult.FAILURE
            if result is not SpanExportResult.SUCCESS:
                failures.inc()
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return exporter.force_flush(timeout_millis)

    return CountingExporter()


def _off_the_loop(export: Callable[[Sequence], Any]) -> Callable[[Sequence], Any]:
    """`export`, run in a real thread of gevent's pool when gevent has patched threading (the
    calling greenlet waits without holding the loop); `export` itself otherwise (gthread,
    where the batch processor already has its own thread)."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return export
    if not monkey.is_module_patched("threading"):
        return export
    return lambda spans: get_hub().threadpool.apply(export, (spans,))
