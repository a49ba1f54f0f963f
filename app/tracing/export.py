"""How finished spans leave a worker: the official OTLP/HTTP exporter, sending the bytes of
`wire.encode_spans` (the same message, about six times cheaper to make than the official
encoding), with its failures counted for /metrics instead of raised, and under gevent run
from a real OS thread so that the workers' event loop keeps serving requests meanwhile."""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from app.tracing import wire

log = logging.getLogger("switchboard")


def exporter():
    """A new span exporter for this process's batch processor (one per process: it owns a
    counter in /metrics)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult
    from prometheus_client import Counter

    failures = Counter("switchboard_trace_export_failures",
                       "Span batches the OTLP exporter could not deliver")

    class Exporter(OTLPSpanExporter):
        """Endpoint, headers, timeout, compression and retries are the official exporter's,
        from the standard OTEL_EXPORTER_OTLP_* variables; only the encoding is ours."""

        def __init__(self):
            super().__init__()
            self._in_background = _off_the_loop(self._deliver)

        def export(self, spans: Sequence) -> SpanExportResult:
            try:
                delivered = self._in_background(spans)
            except Exception:
                log.debug("span export failed", exc_info=True)
                delivered = False
            if not delivered:
                failures.inc()
                return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

        def _deliver(self, spans: Sequence) -> bool:
            # `_client` / `_shutdown`: the official exporter's HTTP client and state
            # (opentelemetry-exporter-otlp-proto-http, pinned in requirements.txt).
            return not self._shutdown and self._client.export(wire.encode_spans(spans)).success

    return Exporter()


def _off_the_loop(work: Callable[[Sequence], Any]) -> Callable[[Sequence], Any]:
    """`work`, run in a real OS thread of its own when gevent has patched threading (the batch
    processor's "thread" is then a greenlet on the workers' event loop: it waits without
    holding the loop); `work` itself otherwise (gthread, where the batch processor already
    has its own thread). One thread, always the same: the exporter's pooled connection to the
    collector belongs to the event loop of the thread that opened it."""
    try:
        from gevent import monkey
        from gevent.threadpool import ThreadPool
    except ImportError:
        return work
    if not monkey.is_module_patched("threading"):
        return work
    thread = ThreadPool(1)
    return lambda spans: thread.apply(work, (spans,))
