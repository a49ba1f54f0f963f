"""OpenTelemetry: spans exported over OTLP/HTTP to a local collector, one tree per request,
GenAI attributes, the client's trace continued, and no key or message text in any span."""
from __future__ import annotations

import json
import time

import pytest
import urllib3

from tests.conftest import GunicornProxy
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.openai import OpenAIEmulator
from tests.keys_fixtures import ADMIN, MASTER, ask, bearer
from tests.messages_fixtures import anthropic_emu, sse_events  # noqa: F401  (fixture)
from tests.otlp_capture import OtlpCollector

SECRET_TEXT = "a private prompt 5521"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
# A worker's first request also waits for the emulator to load its contract: allow for it.
http = urllib3.PoolManager(timeout=30, retries=False)


TRACED = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "sb-test",
          "SWITCHBOARD_MASTER_KEY": MASTER}


@pytest.fixture
def collector():
    collector = OtlpCollector()
    yield collector
    collector.stop()


@pytest.fixture
def traced(collector, start_gunicorn, provider_env, tmp_path):
    """A proxy of the test's own, exporting to the test's own collector. (The collector is
    set up first, so that it is stopped last: a proxy's graceful stop flushes its spans,
    and an absent collector would make it wait out the exporter's retries.)"""
    def start(config: str = "", **env):
        path = tmp_path / "switchboard.yaml"
        path.write_text(config or "{}\n")
        return start_gunicorn({**provider_env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                               **TRACED, "SWITCHBOARD_CONFIG": str(path), **env})
    return start


@pytest.fixture(scope="module")
def shared(emulators, tmp_path_factory):
    """One traced proxy on the default settings (and a fallback, used only when an upstream
    fails) for the tests that only read the spans of their own request ids, exporting to a
    collector of its own: (proxy, collector). No test on it asks for message capture, so
    a secret found in its exports came from the proxy."""
    folder = tmp_path_factory.mktemp("traced")
    config = folder / "switchboard.yaml"
    config.write_text("fallbacks: {gpt-4o-mini: [gpt-4o]}\n")
    collector = OtlpCollector()
    env = {**emulators(OpenAIEmulator).proxy_env(), **emulators(AnthropicEmulator).proxy_env(),
           "SWITCHBOARD_DATA_DIR": str(folder / "data"), "SWITCHBOARD_CONFIG": str(config),
           "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, **TRACED}
    proxy = GunicornProxy(env, folder / "gunicorn.log")
    yield proxy, collector
    proxy.stop()
    collector.stop()


def _server_span(spans, request_id):
    return next((s for s in spans if s["attributes"].get("switchboard.request_id") == request_id
                 and s["kind"] == 2), None)


def _has_request(request_id):
    return lambda spans: _server_span(spans, request_id) is not None


def test_plain_request_span(shared, openai_emu):
    proxy, collector = shared
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                          json=ask(SECRET_TEXT, max_tokens=50, temperature=0.5, top_p=0.9),
                          headers={**ADMIN, "x-request-id": "trace-plain",
                                   "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert answer.status == 200
    traceparent = answer.headers["traceparent"]
    assert traceparent.startswith(f"00-{CLIENT_TRACE}-")
    spans = collector.wait_for(_has_request("trace-plain"))
    server = _server_span(spans, "trace-plain")
    assert server["name"] == "POST /v1/chat/completions"
    assert server["trace_id"] == CLIENT_TRACE and server["parent_span_id"] == CLIENT_SPAN
    assert traceparent.split("-")[2] == server["span_id"]
    assert server["resource"]["service.name"] == "sb-test"
    attributes = server["attributes"]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.id"] == json.loads(answer.data)["id"]
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["switchboard.cost"] > 0 and attributes["switchboard.cache"] == "off"
    assert attributes["http.response.status_code"] == 200
    raw = b"".join(collector.raw)
    for secret in (MASTER.encode(), openai_emu.api_key.encode(), SECRET_TEXT.encode()):
        assert secret not in raw


def test_stream_span_lasts_as_long_as_the_stream(shared):
    proxy, collector = shared
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                             json=ask("stream me", stream=True),
                             headers={**ADMIN, "x-request-id": "trace-stream"})
    assert answer.status == 200 and b"[DONE]" in answer.data
    spans = collector.wait_for(_has_request("trace-stream"))
    server = _server_span(spans, "trace-stream")
    first_token = [e for e in server["events"] if e["name"] == "gen_ai.first_token"]
    assert first_token and server["attributes"]["switchboard.ttft_ms"] > 0
    assert server["start"] < first_token[0]["time"] <= server["end"]
    assert server["attributes"]["gen_ai.usage.output_tokens"] > 0


def test_refused_key_span(shared):
    proxy, collector = shared
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                             headers={**bearer("sk-sb-0000000000000000_wrong"),
                                      "x-request-id": "trace-refused"})
    assert answer.status == 401
    spans = collector.wait_for(_has_request("trace-refused"))
    server = _server_span(spans, "trace-refused")
    assert server["status"] == 2  # ERROR
    assert server["attributes"]["http.response.status_code"] == 401
    assert server["attributes"]["error.type"] == "invalid_request_error"
    assert "Incorrect API key" in server["status_message"]
    assert b"sk-sb-0000000000000000_wrong" not in b"".join(collector.raw)


def test_messages_captured_only_when_asked(traced, collector):
    proxy = traced("otel: {capture_messages: true}\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(SECRET_TEXT),
                    headers={**ADMIN, "x-request-id": "trace-captured"})
    spans = collector.wait_for(_has_request("trace-captured"))
    attributes = _server_span(spans, "trace-captured")["attributes"]
    assert SECRET_TEXT in attributes["gen_ai.input.messages"]
    assert SECRET_TEXT in attributes["gen_ai.output.messages"]


def test_redaction_wins_over_capture(traced, collector):
    proxy = traced("otel: {capture_messages: true}\nredact_messages: true\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(SECRET_TEXT),
                    headers={**ADMIN, "x-request-id": "trace-redacted"})
    spans = collector.wait_for(_has_request("trace-redacted"))
    assert "gen_ai.input.messages" not in _server_span(spans, "trace-redacted")["attributes"]
    assert SECRET_TEXT.encode() not in b"".join(collector.raw)


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
    assert _server_span(collector.wait_for(_has_request("trace-variables")), "trace-variables")
    assert collector.headers[0]["x-tenant"] == "acme" and collector.headers[0]["x-team"] == "llm"


def test_sdk_disabled_wins_over_an_endpoint(traced, collector):
    proxy = traced(OTEL_SDK_DISABLED="true")
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                          headers={**ADMIN, "x-request-id": "trace-off"})
    assert answer.status == 200 and "traceparent" not in answer.headers
    time.sleep(0.5)   # ten batch delays: a span made would have been exported by now
    assert collector.spans == []


def _children(spans, parent):
    return sorted((s for s in spans if s["parent_span_id"] == parent["span_id"]),
                  key=lambda s: s["start"])


def test_retries_and_fallbacks_are_sibling_attempt_spans(shared, openai_emu):
    from tests.emulators.server import Fault, Reply
    proxy, collector = shared
    openai_emu.fail_next(Fault(reply=Reply(500, {"error": {"message": "boom", "type": "server_error",
                                                           "param": None, "code": None}}), times=2))
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                          json=ask("hi", num_retries=1, max_tokens=20),
                          headers={**ADMIN, "x-request-id": "trace-fallback"})
    assert answer.status == 200 and answer.headers["x-switchboard-attempted-fallbacks"] == "1"

    def attempted(found) -> list[dict]:   # the CLIENT spans under this request's own
        server = _server_span(found, "trace-fallback")
        return [s for s in _children(found, server) if s["kind"] == 3] if server else []

    spans = collector.wait_for(lambda found: len(attempted(found)) >= 3)
    server, attempts = _server_span(spans, "trace-fallback"), attempted(spans)
    assert [a["attributes"]["gen_ai.request.model"] for a in attempts] == \
        ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"]
    assert [a["attributes"]["switchboard.attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == [2, 2, 0]  # ERROR, ERROR, UNSET
    assert all(a["name"].startswith("chat ") for a in attempts)
    assert attempts[0]["attributes"]["http.response.status_code"] == 500
    assert any(e["name"] == "exception" and "boom" in e["attributes"]["exception.message"]
               for e in attempts[0]["events"])
    assert attempts[2]["attributes"]["gen_ai.request.max_tokens"] == 20
    assert attempts[2]["attributes"]["gen_ai.usage.output_tokens"] > 0
    assert server["attributes"]["switchboard.fallbacks"] == 1
    assert server["attributes"]["switchboard.retries"] == 1


def test_cache_hit_and_key_check_spans(traced, collector):
    proxy = traced("cache: {enabled: true}\n")
    key = json.loads(http.request("POST", f"{proxy.base_url}/key/generate", json={"max_budget": 5},
                                  headers=ADMIN).data)["key"]
    for request_id in ("trace-cache-1", "trace-cache-2"):
        answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                              json=ask("cache me", temperature=0),
                              headers={**bearer(key), "x-request-id": request_id})
        assert answer.status == 200
    spans = collector.wait_for(_has_request("trace-cache-2"))
    server = _server_span(spans, "trace-cache-2")
    children = {s["name"]: s for s in _children(spans, server)}
    assert children["switchboard.cache.lookup"]["attributes"]["switchboard.cache"] == "hit"
    assert "switchboard.key.check" in children and "switchboard.key.limits" in children
    assert not [s for s in _children(spans, server) if s["kind"] == 3]  # no upstream call
    assert server["attributes"]["switchboard.cache"] == "hit"
    assert server["attributes"]["switchboard.key_id"] and key.startswith(
        "sk-sb-" + server["attributes"]["switchboard.key_id"])
    assert key.encode() not in b"".join(collector.raw)


def test_traceparent_sent_upstream_only_when_asked(traced, collector, openai_emu):
    proxy = traced("otel: {propagate_upstream: true}\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                 headers={**ADMIN, "x-request-id": "trace-propagated"})
    spans = collector.wait_for(_has_request("trace-propagated"))
    server = _server_span(spans, "trace-propagated")
    attempt = [s for s in _children(spans, server) if s["kind"] == 3][0]
    sent = openai_emu.calls[-1].headers["traceparent"]
    assert sent.startswith(f"00-{server['trace_id']}-{attempt['span_id']}-")


def test_sampled_out_requests_make_no_spans_but_carry_the_trace(traced, collector, openai_emu):
    proxy = traced("otel: {propagate_upstream: true}\n", OTEL_TRACES_SAMPLER="always_off")
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                          headers={**ADMIN, "x-request-id": "trace-sampled-out"})
    assert answer.status == 200
    _, trace_id, _, flags = answer.headers["traceparent"].split("-")
    assert not int(flags, 16) & 1  # the W3C `sampled` flag
    sent = openai_emu.calls[-1].headers["traceparent"].split("-")
    assert sent[1] == trace_id and not int(sent[3], 16) & 1
    proxy.stop()  # flushes whatever was queued
    assert collector.spans == []


def test_no_traceparent_upstream_by_default(shared, openai_emu):
    proxy, _ = shared
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(), headers=ADMIN)
    assert "traceparent" not in openai_emu.calls[-1].headers


def test_every_face_gets_its_server_span(shared):
    proxy, collector = shared
    faces = {
        "trace-embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small",
                                                "input": ["one", "two"]}, "embeddings"),
        "trace-completions": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct",
                                                  "prompt": "one two", "max_tokens": 8},
                              "text_completion"),
        "trace-messages": ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 20, "messages": [
            {"role": "user", "content": "hi"}]}, "chat"),
    }
    for request_id, (path, body, _) in faces.items():
        answer = http.request("POST", f"{proxy.base_url}{path}", json=body,
                              headers={**ADMIN, "x-request-id": request_id})
        assert answer.status == 200, answer.data
    spans = collector.wait_for(lambda found: all(_has_request(r)(found) for r in faces))
    for request_id, (path, _, operation) in faces.items():
        server = _server_span(spans, request_id)
        assert server["name"] == f"POST {path}"
        assert server["attributes"]["gen_ai.operation.name"] == operation
        assert server["attributes"]["switchboard.api"] == path.rsplit("/", 1)[1]
        attempts = [s for s in _children(spans, server) if s["kind"] == 3]
        assert attempts and attempts[0]["attributes"]["gen_ai.operation.name"] == operation


def test_a_passed_through_answer_keeps_its_own_id(shared, anthropic_emu):
    """gen_ai.response.id is the id the client got: Anthropic's message id, streamed or not."""
    proxy, collector = shared
    body = {"model": "claude-sonnet-4-5", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}
    plain = http.request("POST", f"{proxy.base_url}/v1/messages", json=body,
                         headers={**ADMIN, "x-request-id": "trace-native"})
    streamed = http.request("POST", f"{proxy.base_url}/v1/messages", json={**body, "stream": True},
                            headers={**ADMIN, "x-request-id": "trace-native-stream"})
    assert plain.status == 200 and streamed.status == 200
    ids = {"trace-native": json.loads(plain.data)["id"],
           "trace-native-stream": sse_events(streamed.data.decode())[0][1]["message"]["id"]}
    spans = collector.wait_for(lambda found: all(_has_request(r)(found) for r in ids))
    for request_id, message_id in ids.items():
        assert message_id.startswith("msg_")
        assert _server_span(spans, request_id)["attributes"]["gen_ai.response.id"] == message_id


def test_key_check_span_only_when_a_key_is_checked(traced, collector):
    """An open proxy takes any token that is not a virtual key as the SDK's placeholder and
    checks nothing: no span. A virtual key's token is looked up, refused here: its span."""
    proxy = traced(SWITCHBOARD_MASTER_KEY="")
    for request_id, token in (("trace-placeholder", "sk-placeholder"),
                              ("trace-unknown-key", "sk-sb-0000000000000000_wrong")):
        http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                     headers={**bearer(token), "x-request-id": request_id})
    spans = collector.wait_for(lambda found: _has_request("trace-placeholder")(found)
                               and _has_request("trace-unknown-key")(found))
    placeholder = _children(spans, _server_span(spans, "trace-placeholder"))
    assert [s["name"] for s in placeholder] == ["chat gpt-4o-mini"]
    refused = _server_span(spans, "trace-unknown-key")
    assert refused["attributes"]["http.response.status_code"] == 401
    assert [s["name"] for s in _children(spans, refused)] == ["switchboard.key.check"]


def test_many_batches_all_delivered(traced, collector, worker_class):
    """Batch after batch leaves through the same connection to the collector, none lost (under
    gevent they are sent from a thread of their own, with its own event loop)."""
    proxy = traced(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", SWITCHBOARD_WORKER_CLASS=worker_class)
    request_ids = [f"trace-batch-{n}" for n in range(30)]
    for request_id in request_ids:
        assert http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                            headers={**ADMIN, "x-request-id": request_id}).status == 200
    spans = collector.wait_for(lambda found: all(_has_request(r)(found) for r in request_ids))
    assert all(_server_span(spans, r) for r in request_ids)
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
    assert not _has_request("trace-flushed")(collector.spans)
    proxy.stop()
    assert _server_span(collector.wait_for(_has_request("trace-flushed"), 5), "trace-flushed")


def test_json_logs_carry_the_trace(traced, collector):
    proxy = traced(SWITCHBOARD_LOG_FORMAT="json", SWITCHBOARD_ACCESS_LOG="-")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                 headers={**ADMIN, "x-request-id": "trace-logged"})
    server = _server_span(collector.wait_for(_has_request("trace-logged")), "trace-logged")
    proxy.stop()
    lines = [json.loads(line) for line in proxy.log().splitlines() if line.strip()]
    access = [line for line in lines if line.get("request_id") == "trace-logged"
              and line["message"] == "request"]
    assert access[0]["trace_id"] == server["trace_id"]
    assert access[0]["span_id"] == server["span_id"]
