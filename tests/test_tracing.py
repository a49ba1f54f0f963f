"""OpenTelemetry: spans exported over OTLP/HTTP to a local collector, one tree per request,
GenAI attributes, the client's trace continued, and no key or message text in any span.
How spans leave (variables, batches, stops, failures) is in test_tracing_export.py."""
from __future__ import annotations

import json

import pytest

from tests.conftest import GunicornProxy
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.openai import OpenAIEmulator
from tests.keys_fixtures import ADMIN, MASTER, ask, bearer
from tests.messages_fixtures import anthropic_emu, sse_events  # noqa: F401  (fixture)
from tests.otlp_capture import OtlpCollector
from tests.tracing_fixtures import (TRACED, children_of, collector, has_request,  # noqa: F401
                                    http, server_span, traced)

SECRET_TEXT = "a private prompt 5521"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


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


def test_plain_request_span(shared, openai_emu):
    proxy, collector = shared
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                          json=ask(SECRET_TEXT, max_tokens=50, temperature=0.5, top_p=0.9),
                          headers={**ADMIN, "x-request-id": "trace-plain",
                                   "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
    assert answer.status == 200
    traceparent = answer.headers["traceparent"]
    assert traceparent.startswith(f"00-{CLIENT_TRACE}-")
    spans = collector.wait_for(has_request("trace-plain"))
    server = server_span(spans, "trace-plain")
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
    spans = collector.wait_for(has_request("trace-stream"))
    server = server_span(spans, "trace-stream")
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
    spans = collector.wait_for(has_request("trace-refused"))
    server = server_span(spans, "trace-refused")
    assert server["status"] == 2  # ERROR
    assert server["attributes"]["http.response.status_code"] == 401
    assert server["attributes"]["error.type"] == "invalid_request_error"
    assert "Incorrect API key" in server["status_message"]
    assert b"sk-sb-0000000000000000_wrong" not in b"".join(collector.raw)


def test_messages_captured_only_when_asked(traced, collector):
    proxy = traced("otel: {capture_messages: true}\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(SECRET_TEXT),
                    headers={**ADMIN, "x-request-id": "trace-captured"})
    spans = collector.wait_for(has_request("trace-captured"))
    attributes = server_span(spans, "trace-captured")["attributes"]
    assert SECRET_TEXT in attributes["gen_ai.input.messages"]
    assert SECRET_TEXT in attributes["gen_ai.output.messages"]


def test_redaction_wins_over_capture(traced, collector):
    proxy = traced("otel: {capture_messages: true}\nredact_messages: true\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(SECRET_TEXT),
                    headers={**ADMIN, "x-request-id": "trace-redacted"})
    spans = collector.wait_for(has_request("trace-redacted"))
    assert "gen_ai.input.messages" not in server_span(spans, "trace-redacted")["attributes"]
    assert SECRET_TEXT.encode() not in b"".join(collector.raw)


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
        server = server_span(found, "trace-fallback")
        return [s for s in children_of(found, server) if s["kind"] == 3] if server else []

    spans = collector.wait_for(lambda found: len(attempted(found)) >= 3)
    server, attempts = server_span(spans, "trace-fallback"), attempted(spans)
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
    spans = collector.wait_for(has_request("trace-cache-2"))
    server = server_span(spans, "trace-cache-2")
    children = {s["name"]: s for s in children_of(spans, server)}
    assert children["switchboard.cache.lookup"]["attributes"]["switchboard.cache"] == "hit"
    assert "switchboard.key.check" in children and "switchboard.key.limits" in children
    assert not [s for s in children_of(spans, server) if s["kind"] == 3]  # no upstream call
    assert server["attributes"]["switchboard.cache"] == "hit"
    assert server["attributes"]["switchboard.key_id"] and key.startswith(
        "sk-sb-" + server["attributes"]["switchboard.key_id"])
    assert key.encode() not in b"".join(collector.raw)


def test_traceparent_sent_upstream_only_when_asked(traced, collector, openai_emu):
    proxy = traced("otel: {propagate_upstream: true}\n")
    http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                 headers={**ADMIN, "x-request-id": "trace-propagated"})
    spans = collector.wait_for(has_request("trace-propagated"))
    server = server_span(spans, "trace-propagated")
    attempt = [s for s in children_of(spans, server) if s["kind"] == 3][0]
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


def test_every_face_gets_itsserver_span(shared):
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
    spans = collector.wait_for(lambda found: all(has_request(r)(found) for r in faces))
    for request_id, (path, _, operation) in faces.items():
        server = server_span(spans, request_id)
        assert server["name"] == f"POST {path}"
        assert server["attributes"]["gen_ai.operation.name"] == operation
        assert server["attributes"]["switchboard.api"] == path.rsplit("/", 1)[1]
        attempts = [s for s in children_of(spans, server) if s["kind"] == 3]
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
    spans = collector.wait_for(lambda found: all(has_request(r)(found) for r in ids))
    for request_id, message_id in ids.items():
        assert message_id.startswith("msg_")
        assert server_span(spans, request_id)["attributes"]["gen_ai.response.id"] == message_id


def test_key_check_span_only_when_a_key_is_checked(traced, collector):
    """An open proxy takes any token that is not a virtual key as the SDK's placeholder and
    checks nothing: no span. A virtual key's token is looked up, refused here: its span."""
    proxy = traced(SWITCHBOARD_MASTER_KEY="")
    for request_id, token in (("trace-placeholder", "sk-placeholder"),
                              ("trace-unknown-key", "sk-sb-0000000000000000_wrong")):
        http.request("POST", f"{proxy.base_url}/v1/chat/completions", json=ask(),
                     headers={**bearer(token), "x-request-id": request_id})
    spans = collector.wait_for(lambda found: has_request("trace-placeholder")(found)
                               and has_request("trace-unknown-key")(found))
    placeholder = children_of(spans, server_span(spans, "trace-placeholder"))
    assert [s["name"] for s in placeholder] == ["chat gpt-4o-mini"]
    refused = server_span(spans, "trace-unknown-key")
    assert refused["attributes"]["http.response.status_code"] == 401
    assert [s["name"] for s in children_of(spans, refused)] == ["switchboard.key.check"]


