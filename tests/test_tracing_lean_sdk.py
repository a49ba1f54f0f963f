"""app/tracing/lean_sdk.py: a LeanSpan records what the SDK's own span records for the same
calls (attributes, their order and dropped counts, events, links, status, name, parent), the
provider's sampler decides as it does for the SDK's spans, and both encode to the same OTLP."""
from __future__ import annotations

import os

import pytest
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (ALWAYS_OFF, ALWAYS_ON, ParentBased,
                                              TraceIdRatioBased)
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, TraceState

from app.tracing import lean_sdk

# What the proxy gives (plain), and what must take the SDK's own checks.
CASES = [
    {"gen_ai.operation.name": "chat", "gen_ai.request.max_tokens": 32, "switchboard.cost": 1.5e-05,
     "switchboard.cost_unknown": True, "gen_ai.response.finish_reasons": ["stop", "length"],
     "switchboard.empty": "", "switchboard.none": []},
    {"switchboard.tuple": ("a", 1, 2.5, False)},
    {"": "dropped key", "kept": 1},
    {"switchboard.mapping": {"a": 1}, "x": "y"},
    {"switchboard.nested": [["a"], ["b"]]},
    {"switchboard.object": object(), "x": 1},
    {"switchboard.bytes": b"\x00"},
    {"switchboard.none": None},
    {3: "a non-string key"},
]
REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                     trace_flags=TraceFlags(TraceFlags.SAMPLED))
LINKED = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))


def _tracer(lean: bool, limits: SpanLimits | None = None, sampler=None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits, sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    return (lean_sdk.LeanTracer(tracer) if lean else tracer), exporter


def _record(tracer) -> None:
    """The calls the proxy makes on its spans, and a few it does not."""
    remote = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    server = tracer.start_span("POST /v1/chat/completions", context=remote,
                               kind=trace.SpanKind.SERVER, attributes={"url.path": "/v1"},
                               links=[trace.Link(LINKED, {"why": "batch"})])
    token = context.attach(trace.set_span_in_context(server))
    for case in CASES:
        span = tracer.start_span("s", attributes={"first": 1, "second": "two"})
        span.set_attributes(case)
        span.set_attribute("first", 2)  # an existing key moves last
        span.add_event("e", {"switchboard.ttft_ms": 12.5, "k": ["a"]}, timestamp=5)
        span.set_status(Status(StatusCode.ERROR, "upstream 500"))
        span.end()
    try:
        with tracer.start_as_current_span("raises"):
            raise ValueError("boom")
    except ValueError:
        pass
    context.detach(token)
    server.update_name("POST /v1/{face}")
    server.set_status(StatusCode.OK)
    server.set_status(Status(StatusCode.ERROR))  # OK is final
    server.end()
    server.set_attribute("after", "end")  # ignored
    server.end()  # ignored


def _recorded(span) -> tuple:
    parent = span.parent.span_id if span.parent else None
    events = [(e.name, list(e.attributes.items()), e.timestamp) for e in span.events
              if e.name != "exception"]
    exceptions = [(e.attributes.get("exception.type"), e.attributes.get("exception.message"))
                  for e in span.events if e.name == "exception"]
    return (span.name, span.kind, list(span.attributes.items()), span.dropped_attributes,
            events, exceptions, span.dropped_events,
            [(link.context, dict(link.attributes)) for link in span.links], span.dropped_links,
            span.status.status_code, span.status.description, parent == REMOTE.span_id,
            span.context.trace_id == REMOTE.trace_id, span.context.trace_flags,
            span.start_time <= span.end_time)


def _without_ids(message):
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.span_id = span.parent_span_id = b""
                span.start_time_unix_nano = span.end_time_unix_nano = 0
                for event in span.events:
                    if event.name == "exception":  # its time, and the line its trace names
                        event.time_unix_nano = 0
                        del event.attributes[:]
    return message


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=3, max_events=0,
                                                     max_links=0),
                                    SpanLimits(max_span_attribute_length=2, max_events=1),
                                    SpanLimits(max_attribute_length=3, max_event_attributes=1,
                                               max_links=1)])
def test_lean_spans_record_what_sdk_spans_record(limits):
    recorded = {}
    for lean in (False, True):
        tracer, exporter = _tracer(lean, limits)
        _record(tracer)
        spans = exporter.get_finished_spans()
        assert all(isinstance(s, lean_sdk.LeanSpan) == lean for s in spans)
        recorded[lean] = spans
    assert [_recorded(s) for s in recorded[True]] == [_recorded(s) for s in recorded[False]]
    assert (_without_ids(encode_spans(recorded[True]))
            == _without_ids(encode_spans(recorded[False])))
    if limits is None:
        first = recorded[True][0]
        assert list(first.attributes)[0] == "second" and list(first.attributes)[-1] == "first"
        assert first.attributes["gen_ai.response.finish_reasons"] == ("stop", "length")
        assert recorded[True][-1].name == "POST /v1/{face}"


@pytest.mark.parametrize("sampler, parent_sampled, recorded", [
    (ALWAYS_OFF, None, False),
    (ALWAYS_OFF, True, False),
    (ALWAYS_ON, False, True),
    (ParentBased(ALWAYS_ON), None, True),
    (ParentBased(ALWAYS_ON), True, True),
    (ParentBased(ALWAYS_ON), False, False),
    (ParentBased(ALWAYS_OFF, remote_parent_not_sampled=ALWAYS_ON), False, True),
    (ParentBased(ALWAYS_OFF), True, True),
    (ParentBased(TraceIdRatioBased(1.0)), False, False),
    (ParentBased(TraceIdRatioBased(0.0)), True, True),
    (ParentBased(TraceIdRatioBased(1.0)), None, True),
])
def test_sampler_decides(sampler, parent_sampled, recorded):
    """As for the SDK's spans: a span sampled out is a NonRecordingSpan that reaches no
    processor, and carries the decision in its flags; a remote parent's trace state is kept.
    (The samplers that decide by the parent alone are not asked per span: held here to the
    SDK's own spans under the same sampler.)"""
    parent = None
    if parent_sampled is not None:
        flags = TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT)
        parent = trace.set_span_in_context(trace.NonRecordingSpan(
            SpanContext(REMOTE.trace_id, REMOTE.span_id, is_remote=True, trace_flags=flags,
                        trace_state=TraceState([("vendor", "v1")]))))
    contexts = []
    for lean in (True, False):
        tracer, exporter = _tracer(lean, sampler=sampler)
        span = tracer.start_span("s", context=parent)
        assert span.is_recording() == recorded
        assert span.get_span_context().trace_flags.sampled == recorded
        span.end()
        assert len(exporter.get_finished_spans()) == int(recorded)
        context_ = span.get_span_context()
        contexts.append((context_.trace_flags, context_.trace_state,
                         context_.trace_id == REMOTE.trace_id))
    assert contexts[0] == contexts[1]


def test_attributes_set_later_are_computed_when_the_ended_span_is_read():
    """set_attributes_later: computed once, at the first read after the span ended, as if
    set last (existing keys move last, the span's limit holds); ignored once ended."""
    computed = []

    def compute(facts):
        computed.append(facts)
        return {"later": facts, "first": 2, "list": ["a"]}

    tracer, exporter = _tracer(True, SpanLimits(max_span_attributes=3))
    span = tracer.start_span("s", attributes={"first": 1, "second": 2, "third": 3})
    span.set_attributes_later(compute, "told")
    assert computed == [] and dict(span.attributes) == {"first": 1, "second": 2, "third": 3}
    span.end()
    span.set_attributes_later(compute, "too late")
    [ended] = exporter.get_finished_spans()
    assert computed == []
    assert list(ended.attributes.items()) == [("later", "told"), ("first", 2), ("list", ("a",))]
    assert ended.dropped_attributes == 3 and computed == ["told"]


def test_batch_processor_notices_a_fork(tmp_path):
    """The pid the batch processor compares is renewed in a forked child, so a child's spans
    still reach its exporter (through a new worker thread, as the SDK makes after a fork)."""
    lean_sdk.install()
    lean_sdk.install()  # once is enough; a second call changes nothing
    import opentelemetry.sdk._shared_internal as batching
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class ToFile(SpanExporter):
        def export(self, spans):
            with open(tmp_path / f"{os.getpid()}.txt", "a") as out:
                out.writelines(f"{span.name}\n" for span in spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ToFile(), schedule_delay_millis=10))
    tracer = lean_sdk.LeanTracer(provider.get_tracer("t"))
    tracer.start_span("parent").end()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            assert batching.os.getpid() == os.getpid()
            tracer.start_span("child").end()
            provider.force_flush(5000)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    provider.shutdown()
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / f"{child}.txt").read_text() == "child\n"
    assert (tmp_path / f"{os.getpid()}.txt").read_text() == "parent\n"
