"""app/tracing/lean_sdk.py: spans filled through the attributes' fast path hold exactly what
the SDK as shipped holds for the same calls (entries, order, dropped counts)."""
from __future__ import annotations

import importlib
import os

import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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


def _spans(lean: bool, limits: SpanLimits | None = None):
    import opentelemetry.sdk.trace as sdk_trace
    if lean:
        lean_sdk.install()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for case in CASES:
        span = tracer.start_span("s", attributes={"first": 1, "second": "two"})
        span.set_attributes(case)
        span.set_attributes({"first": 2})  # an existing key moves last
        span.add_event("e", {"switchboard.ttft_ms": 12.5, "k": ["a"]})
        span.end()
    provider.shutdown()
    assert issubclass(sdk_trace.BoundedAttributes, lean_sdk._PlainAttributesMixin) == lean
    return [(list(s.attributes.items()), s.dropped_attributes,
             [(e.name, list(e.attributes.items())) for e in s.events])
            for s in exporter.get_finished_spans()]


@pytest.fixture
def shipped_sdk():
    """The SDK's span module as shipped before and after the test (the swap is process-wide)."""
    import opentelemetry.sdk.trace as sdk_trace
    sdk_trace.BoundedAttributes = BoundedAttributes
    yield
    sdk_trace.BoundedAttributes = BoundedAttributes


@pytest.mark.parametrize("limits", [None, SpanLimits(max_span_attributes=3),
                                    SpanLimits(max_span_attribute_length=2)])
def test_fast_path_keeps_what_the_sdk_keeps(shipped_sdk, limits):
    shipped = _spans(False, limits)
    assert _spans(True, limits) == shipped
    if limits is None:
        assert shipped[0][0][0] == ("second", "two") and shipped[0][0][-1] == ("first", 2)
        assert ("gen_ai.response.finish_reasons", ("stop", "length")) in shipped[0][0]


def test_install_twice_swaps_once(shipped_sdk):
    import opentelemetry.sdk.trace as sdk_trace
    lean_sdk.install()
    swapped = sdk_trace.BoundedAttributes
    lean_sdk.install()
    assert sdk_trace.BoundedAttributes is swapped
    assert importlib.import_module("opentelemetry.attributes").BoundedAttributes is BoundedAttributes


def test_batch_processor_notices_a_fork(shipped_sdk, tmp_path):
    """The pid the batch processor compares is renewed in a forked child, so a child's spans
    still reach its exporter (through a new worker thread, as the SDK makes after a fork)."""
    lean_sdk.install()
    import opentelemetry.sdk._shared_internal as batching
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class ToFile(SpanExporter):
        def export(self, spans):
            with open(tmp_path / f"{os.getpid()}.txt", "a") as out:
                out.writelines(f"{span.name}\n" for span in spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ToFile(), schedule_delay_millis=10))
    tracer = provider.get_tracer("t")
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
