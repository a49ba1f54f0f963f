"""The proxy's OTLP encoding (app/tracing/wire.py) against the official one: the same SDK spans
decode, with opentelemetry-proto, to the same ExportTraceServiceRequest."""
from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from app.tracing import wire

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "x1"), ("b", "2")]))


@pytest.fixture
def finished():
    """Spans the way the proxy makes them, ended, from a real SDK provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "wire-test", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("switchboard", "1.0"), provider.get_tracer("other"), exporter
    provider.shutdown()


def _same_message(spans):
    ours = ExportTraceServiceRequest.FromString(wire.encode_spans(spans))
    assert ours == official(spans)


def test_request_spans_decode_like_the_official_encoding(finished):
    tracer, _, exporter = finished
    server = tracer.start_span("POST /v1/chat/completions", kind=trace.SpanKind.SERVER,
                               context=trace.set_span_in_context(NonRecordingSpan(REMOTE)),
                               attributes={"http.request.method": "POST", "url.path": "/v1/x"})
    attempt = tracer.start_span(
        "chat gpt-4o", kind=trace.SpanKind.CLIENT, context=trace.set_span_in_context(server),
        attributes={"gen_ai.request.temperature": 0.5, "gen_ai.request.max_tokens": 50,
                    "switchboard.attempt": 1, "gen_ai.response.finish_reasons": ["stop", "length"],
                    "switchboard.cost": 0.0, "switchboard.cost_unknown": True,
                    "switchboard.big": -(1 << 40), "switchboard.blob": b"\x00\x01",
                    "switchboard.text": "é ünïcode", "switchboard.empty": ""})
    attempt.add_event("exception", {"exception.type": "rate_limit", "exception.message": "slow"})
    attempt.set_status(Status(StatusCode.ERROR, "upstream said 429"))
    attempt.end()
    tracer.start_span("switchboard.key.check", context=trace.set_span_in_context(server)).end()
    server.add_event("gen_ai.first_token", {"switchboard.ttft_ms": 12.5}, timestamp=123456789)
    server.set_status(Status(StatusCode.OK))
    server.end()
    _same_message(exporter.get_finished_spans())


def test_links_scopes_and_mappings_decode_like_the_official_encoding(finished):
    tracer, other, exporter = finished
    with tracer.start_as_current_span("linked", links=[Link(REMOTE, {"why": "retry", "n": 2})]):
        other.start_span("elsewhere", attributes={"flags": (True, False), "ints": (1, 2, 3),
                                                  "floats": (1.5, -2.0)}).end()
    span = tracer.start_span("mapping")
    span.set_attribute("plain", "x")
    span.end()
    spans = list(exporter.get_finished_spans())
    _same_message(spans)
    assert len(ExportTraceServiceRequest.FromString(
        wire.encode_spans(spans)).resource_spans[0].scope_spans) == 2


def test_repeated_attributes_encode_the_same_from_the_kept_bytes(finished):
    tracer, _, exporter = finished
    for number in range(3):
        tracer.start_span("chat gpt-4o", attributes={"gen_ai.request.model": "gpt-4o",
                                                     "switchboard.attempt": number,
                                                     "switchboard.flag": number == 1}).end()
    spans = exporter.get_finished_spans()
    assert wire.encode_spans(spans) == wire.encode_spans(spans)
    _same_message(spans)
