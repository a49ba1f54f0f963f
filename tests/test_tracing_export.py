"""OpenTelemetry export: which variables turn tracing on or off, every batch delivered,
the queue flushed on a graceful stop, an absent collector costing requests nothing, and
JSON logs carrying the trace."""
from __future__ import annotations

import json
import time

import pytest

from tests.keys_fixtures import ADMIN, ask
from tests.tracing_fixtures import collector, has_request, http, server_span, traced  # noqa: F401


def test_absent_collector_never_fails_a_request(start_gunicorn, provider_env):
    from tests.servers import free_port
    # the exporter's own bound on a delivery, retries included (10 s by default), kept short:
    # a refused connection fails at once either way, and the graceful stop waits it out
    proxy = start_gunicorn({**provider_env, "OTEL_EXPORTER_OTLP_ENDPOINT":
                            f"http://127.0.0.1:{free_port()}", "OTEL_BSP_SCHEDULE_DELAY": "10",
                            "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    for _ in range(5):
        assert http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                               json=ask()).status == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        metrics = http.request("GET", f"{proxy.base_url}/metrics").data.decode()
        failures = [line for line in metrics.splitlines()
                    if line.startswith("switchboard_trace_export_failures_total ")]
        if failures and float(failures[0].split()[1]) >= 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("no export failure counted in /metrics")


def test_tracing_off_without_endpoint(shared_gunicorn, openai_emu):
    proxy = shared_gunicorn()
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask())
    assert answer.status == 200 and "traceparent" not in answer.headers


def test_the_other_standard_variables(traced, collector):
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone turns tracing on (a full URL), with the
    OTEL_EXPORTER_OTLP_HEADERS on every export; the sampler variables are the SDK's."""
    proxy = traced(OTEL_EXPORTER_OTLP_ENDPOINT="",
                   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.endpoint}/v1/traces",
                   OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme,x-team=llm",
                   OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="1.0")
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                          headers={**ADMIN, "x-request-id": "trace-variables"})
    assert answer.status == 200 and int(answer.headers["traceparent"][-2:], 16) & 1  # sampled
    assert server_span(collector.wait_for(has_request("trace-variables")), "trace-variables")
    assert collector.headers[0]["x-tenant"] == "acme" and collector.headers[0]["x-team"] == "llm"


def test_sdk_disabled_wins_over_an_endpoint(traced, collector):
    proxy = traced(OTEL_SDK_DISABLED="true")
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                          headers={**ADMIN, "x-request-id": "trace-off"})
    assert answer.status == 200 and "traceparent" not in answer.headers
    time.sleep(0.5)   # ten batch delays: a span made would have been exported by now
    assert collector.spans == []


def test_many_batches_all_delivered(traced, collector, worker_class):
    """Batch after batch leaves through the same connection to the collector, none lost (under
    gevent they are sent from a thread of their own, with its own event loop)."""
    proxy = traced(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", SWITCHBOARD_WORKER_CLASS=worker_class)
    request_ids = [f"trace-batch-{n}" for n in range(30)]
    for request_id in request_ids:
        assert http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                            headers={**ADMIN, "x-request-id": request_id}).status == 200
    spans = collector.wait_for(lambda found: all(has_request(r)(found) for r in request_ids))
    assert all(server_span(spans, r) for r in request_ids)
    metrics = http.request("GET", f"{proxy.base_url}/metrics", headers=ADMIN).data.decode()
    assert "switchboard_trace_export_failures_total 0.0" in metrics or \
        "switchboard_trace_export_failures_total" not in metrics
    assert "destroyed loop" not in proxy.log()


def test_spans_flushed_on_graceful_stop(traced, collector, worker_class):
    """Under gevent each batch is exported from a thread of gevent's pool, under gthread from
    the batch processor's own thread: either way the queue is sent on a graceful stop."""
    proxy = traced(OTEL_BSP_SCHEDULE_DELAY="600000",  # the batch would wait 10 minutes
                   SWITCHBOARD_WORKER_CLASS=worker_class)
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                 headers={**ADMIN, "x-request-id": "trace-flushed"})
    assert not has_request("trace-flushed")(collector.spans)
    proxy.stop()
    assert server_span(collector.wait_for(has_request("trace-flushed"), 5), "trace-flushed")


def test_json_logs_carry_the_trace(traced, collector):
    proxy = traced(SWITCHBOARD_LOG_FORMAT="json", SWITCHBOARD_ACCESS_LOG="-")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                 headers={**ADMIN, "x-request-id": "trace-logged"})
    server = server_span(collector.wait_for(has_request("trace-logged")), "trace-logged")
    proxy.stop()
    lines = [json.loads(line) for line in proxy.log().splitlines() if line.strip()]
    access = [line for line in lines if line.get("request_id") == "trace-logged"
              and line["message"] == "request"]
    assert access[0]["trace_id"] == server["trace_id"]
    assert access[0]["span_id"] == server["span_id"]


@pytest.mark.parametrize("env, sizes", [
    ({}, {"max_queue_size": 8192, "max_export_batch_size": 2048}),
    ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2"}, {"max_queue_size": 8192}),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "100"}, {"max_export_batch_size": 100}),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "lots"}, {"max_export_batch_size": 512}),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10"}, {}),
])
def test_batch_sizes_unless_the_variables_say(monkeypatch, env, sizes):
    """Batches of 2,048 in a queue of 8,192 by default; the standard variables decide when
    set, and the batch processor accepts what results."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from app.tracing import batch_sizes
    assert batch_sizes(env) == sizes
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    BatchSpanProcessor(InMemorySpanExporter(), **batch_sizes(env)).shutdown()
