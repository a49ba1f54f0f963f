"""Each integration, pointed at a capture server on 127.0.0.1 through its official client (or
the HTTP API): what arrives for a success, a failure, a stream and a cache hit."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.capture import (CONFIG, HELICONE_KEY, MIXPANEL_TOKEN, POSTHOG_KEY, SENTRY_KEY,
                           SUPABASE_KEY, make_proxy, start_services)
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.server import Fault, Reply

HELLO = "Hello! You said: "
OK_META = {"team": "search", "run": 7}


@pytest.fixture(scope="module")
def services():
    started = start_services()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def openai_emu():
    emulator = OpenAIEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def run(services, tmp_path_factory, openai_emu):
    """One proxy with every integration on, four kinds of request, then a graceful close."""
    folder = tmp_path_factory.mktemp("integrations")
    config = folder / "switchboard.yaml"
    config.write_text(CONFIG + "cache: {enabled: true, mode: exact}\n")
    env = {"OPENAI_API_KEY": openai_emu.api_key, "OPENAI_API_BASE": f"{openai_emu.base_url}/v1",
           "SWITCHBOARD_DATA_DIR": str(folder / "data"), **services.env()}
    proxy = make_proxy(env, str(config))
    replies = {"ok": proxy.chat("req-ok", user="alice", metadata=OK_META)}
    openai_emu.fail_next(Fault(reply=Reply(500, {"error": {"message": "upstream exploded",
                                                           "type": "server_error"}})))
    replies["fail"] = proxy.chat("req-fail", user="bob", metadata={"team": "ads"})
    replies["stream"] = proxy.chat("req-stream", user="carol", stream=True,
                                   stream_options={"include_usage": True})
    replies["stream"].get_data()  # the stream runs (and ends) as it is read
    cached = [{"role": "user", "content": "cache me"}]
    replies["miss"] = proxy.chat("req-miss", messages=cached)
    replies["hit"] = proxy.chat("req-hit", messages=cached, user="dave")
    proxy.close()
    assert not openai_emu.violations
    return proxy, replies


def question(request_id):
    return [{"role": "user", "content": f"question {request_id}"}]


def test_the_events_themselves(run):
    proxy, replies = run
    assert replies["ok"].status_code == 200 and replies["fail"].status_code == 502
    assert replies["hit"].headers["x-switchboard-cache"] == "hit"
    ok, fail = proxy.event("req-ok"), proxy.event("req-fail")
    usage = replies["ok"].json["usage"]
    assert (ok.prompt_tokens, ok.completion_tokens) == (usage["prompt_tokens"],
                                                        usage["completion_tokens"])
    assert ok.cost == pytest.approx(float(replies["ok"].headers["x-switchboard-cost"]))
    assert (ok.user, ok.metadata) == ("alice", OK_META)
    assert fail.error_type == "api_error" and "upstream exploded" in fail.error_message
    assert fail.attempts and fail.attempts[0]["status"] == 502
    stream = proxy.event("req-stream")
    assert stream.stream and stream.ttft_ms is not None and stream.completion_tokens > 0
    hit = proxy.event("req-hit")
    assert hit.cache == "hit" and hit.cost == 0 and hit.saved_cost == pytest.approx(ok.cost)


def test_supabase(run, services):
    proxy, replies = run
    posts = services.servers["supabase"].requests
    assert {(p.method, p.path) for p in posts} == {("POST", "/rest/v1/request_logs")}
    for post in posts:
        assert post.headers["apikey"] == SUPABASE_KEY
        assert post.headers["authorization"] == f"Bearer {SUPABASE_KEY}"
        assert "resolution=merge-duplicates" in post.headers["prefer"]
        assert post.query == {"on_conflict": ["request_id"]}
    rows = {row["request_id"]: row for post in posts for row in post.json()}
    assert set(rows) == {"req-ok", "req-fail", "req-stream", "req-miss", "req-hit"}
    ok, event = rows["req-ok"], proxy.event("req-ok")
    usage = replies["ok"].json["usage"]
    assert ok == {
        "request_id": "req-ok",
        "created_at": datetime.fromtimestamp(event.started_at, timezone.utc).isoformat(),
        "status": 200, "success": True, "requested_model": "gpt-4", "model": "gpt-4",
        "provider": "openai", "deployment": "gpt-4", "stream": False,
        "messages": question("req-ok"), "response": replies["ok"].json,
        "finish_reason": "stop", "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"], "total_tokens": usage["total_tokens"],
        "cached_tokens": 0, "cache_creation_tokens": 0, "reasoning_tokens": 0,
        "usage_estimated": False, "cost": event.cost, "saved_cost": 0.0,
        "latency_ms": event.latency_ms, "ttft_ms": None, "overhead_ms": event.overhead_ms,
        "cache": "miss", "attempts": [], "retries": 0, "fallbacks": 0, "error_type": None,
        "error_code": None, "error_message": None, "end_user": "alice", "key_id": None,
        "key_alias": None, "metadata": OK_META}
    fail = rows["req-fail"]
    assert (fail["success"], fail["status"], fail["error_type"]) == (False, 502, "api_error")
    assert "upstream exploded" in fail["error_message"] and fail["response"] is None
    assert fail["attempts"] == proxy.event("req-fail").attempts and fail["end_user"] == "bob"
    stream = rows["req-stream"]
    assert stream["stream"] is True and stream["ttft_ms"] > 0
    assert stream["response"]["choices"][0]["message"]["content"] == HELLO + "question req-stream"
    assert stream["completion_tokens"] == proxy.event("req-stream").completion_tokens > 0
    hit = rows["req-hit"]
    assert (hit["cache"], hit["cost"], hit["end_user"]) == ("hit", 0.0, "dave")
    assert hit["saved_cost"] == pytest.approx(rows["req-miss"]["cost"]) and hit["saved_cost"] > 0


def posthog_events(services):
    posts = services.servers["posthog"].requests
    assert {(p.method, p.path) for p in posts} == {("POST", "/batch/")}
    assert all(p.json()["api_key"] == POSTHOG_KEY for p in posts)
    return {e["properties"]["$ai_trace_id"]: e for p in posts for e in p.json()["batch"]}


def test_posthog(run, services):
    proxy, replies = run
    events = posthog_events(services)
    assert set(events) == {"req-ok", "req-fail", "req-stream", "req-miss", "req-hit"}
    ok, event = events["req-ok"], proxy.event("req-ok")
    assert (ok["event"], ok["distinct_id"]) == ("$ai_generation", "alice")
    props = ok["properties"]
    usage = replies["ok"].json["usage"]
    assert {k: props[k] for k in props if k.startswith("$ai_")} == {
        "$ai_trace_id": "req-ok", "$ai_model": "gpt-4", "$ai_provider": "openai",
        "$ai_input": question("req-ok"),
        "$ai_output_choices": [replies["ok"].json["choices"][0]["message"]],
        "$ai_input_tokens": usage["prompt_tokens"],
        "$ai_output_tokens": usage["completion_tokens"], "$ai_cache_read_input_tokens": 0,
        "$ai_cache_creation_input_tokens": 0, "$ai_reasoning_tokens": 0,
        "$ai_total_cost_usd": event.cost, "$ai_latency": round(event.latency_ms / 1000, 6),
        "$ai_http_status": 200, "$ai_stop_reason": "stop", "$ai_is_error": False,
        "$ai_error": None, "$ai_stream": False}
    assert props["metadata"] == OK_META and props["user"] == "alice"
    assert props["requested_model"] == "gpt-4" and props["cache"] == "miss"
    assert ok["uuid"] and ok["timestamp"].startswith(
        datetime.fromtimestamp(event.started_at, timezone.utc).isoformat()[:19])
    fail = events["req-fail"]["properties"]
    assert fail["$ai_is_error"] is True and "upstream exploded" in fail["$ai_error"]
    assert fail["$ai_http_status"] == 502 and fail["$ai_output_choices"] is None
    stream = events["req-stream"]["properties"]
    assert stream["$ai_stream"] is True and stream["time_to_first_token_s"] > 0
    assert stream["$ai_output_choices"][0]["content"] == HELLO + "question req-stream"
    hit = events["req-hit"]
    assert hit["distinct_id"] == "dave" and hit["properties"]["cache"] == "hit"
    assert hit["properties"]["$ai_total_cost_usd"] == 0.0
    miss = events["req-miss"]  # no user, no key: personless, keyed by the request
    assert miss["distinct_id"] == "req-miss"
    assert miss["properties"]["$process_person_profile"] is False


def mixpanel_events(services):
    posts = services.servers["mixpanel"].requests
    assert {(p.method, p.path) for p in posts} == {("POST", "/track")}
    events = [e for p in posts for e in json.loads(p.form()["data"])]
    assert all(e["properties"]["token"] == MIXPANEL_TOKEN for e in events)
    return {e["properties"]["request_id"]: e for e in events}


def test_mixpanel(run, services):
    proxy, replies = run
    events = mixpanel_events(services)
    assert set(events) == {"req-ok", "req-fail", "req-stream", "req-miss", "req-hit"}
    ok, event = events["req-ok"], proxy.event("req-ok")
    props = ok["properties"]
    usage = replies["ok"].json["usage"]
    assert ok["event"] == "LLM Request" and props["distinct_id"] == "alice"
    assert props["time"] == event.started_at and len(props["$insert_id"]) == 32
    expected = {
        "request_id": "req-ok", "requested_model": "gpt-4", "model": "gpt-4",
        "provider": "openai", "deployment": "gpt-4", "stream": False, "status": 200,
        "is_error": False, "error_type": None, "error_code": None, "error": None,
        "finish_reason": "stop", "input_tokens": usage["prompt_tokens"],
        "output_tokens": usage["completion_tokens"], "total_tokens": usage["total_tokens"],
        "cached_tokens": 0, "cache_creation_tokens": 0, "reasoning_tokens": 0,
        "usage_estimated": False, "cost_usd": event.cost, "saved_cost_usd": 0.0,
        "latency_s": round(event.latency_ms / 1000, 6), "time_to_first_token_s": None,
        "overhead_ms": event.overhead_ms, "cache": "miss", "retries": 0, "fallbacks": 0,
        "attempts": [], "user": "alice", "key_id": None, "key_alias": None,
        "metadata": OK_META, "input": question("req-ok"),
        "output": [replies["ok"].json["choices"][0]["message"]]}
    assert {k: props[k] for k in expected} == expected
    fail = events["req-fail"]["properties"]
    assert (fail["is_error"], fail["status"], fail["distinct_id"]) == (True, 502, "bob")
    assert "upstream exploded" in fail["error"]
    stream = events["req-stream"]["properties"]
    assert stream["stream"] is True and stream["output"][0]["content"].startswith(HELLO)
    hit = events["req-hit"]["properties"]
    assert (hit["cache"], hit["cost_usd"], hit["distinct_id"]) == ("hit", 0.0, "dave")


def test_sentry_gets_failures_only(run, services):
    proxy, _ = run
    posts = services.servers["sentry"].requests
    assert {(p.method, p.path) for p in posts} == {("POST", "/api/1/envelope/")}
    assert all(f"sentry_key={SENTRY_KEY}" in p.headers["x-sentry-auth"] for p in posts)
    events = [item for p in posts for item in p.envelope() if "exception" in item]
    assert [e["tags"]["request_id"] for e in events] == ["req-fail"]
    report, event = events[0], proxy.event("req-fail")
    assert report["level"] == "error" and report["environment"] == "test"
    assert event.error_code == "server_error"  # the provider's own error type
    assert report["exception"]["values"][0]["type"] == "server_error"
    assert "upstream exploded" in report["exception"]["values"][0]["value"]
    assert report["tags"] == {"model": "gpt-4", "requested_model": "gpt-4",
                              "request_id": "req-fail", "status": "502", "provider": "openai",
                              "upstream_status": "500",
                              "error_type": "api_error", "error_code": "server_error",
                              "cache": "off",
                              "stream": "False"}
    context = report["contexts"]["switchboard"]
    assert context["attempts"] == event.attempts and context["retries"] == 0
    assert report["user"] == {"id": "bob"}
    assert report["extra"]["metadata"] == {"team": "ads"}
    crumbs = report["breadcrumbs"]["values"]
    assert [c["category"] for c in crumbs] == ["upstream.attempt"]
    assert crumbs[0]["data"]["status"] == 502 and crumbs[0]["data"]["model"] == "gpt-4"


def test_helicone_gets_successes(run, services):
    proxy, replies = run
    posts = services.servers["helicone"].requests
    assert {(p.method, p.path) for p in posts} == {("POST", "/oai/v1/log")}
    assert all(p.headers["authorization"] == f"Bearer {HELICONE_KEY}" for p in posts)
    logs = {p.json()["providerRequest"]["meta"]["Helicone-Property-Request-Id"]: p.json()
            for p in posts}
    assert set(logs) == {"req-ok", "req-stream", "req-miss", "req-hit"}
    ok, event = logs["req-ok"], proxy.event("req-ok")
    assert ok["providerRequest"] == {
        "url": "/v1/chat/completions",
        "json": {"model": "gpt-4", "messages": question("req-ok"), "stream": False,
                 "user": "alice"},
        "meta": {"Helicone-Property-Request-Id": "req-ok",
                 "Helicone-Property-Provider": "openai", "Helicone-Property-Cache": "miss",
                 "Helicone-User-Id": "alice", "Helicone-Property-team": "search",
                 "Helicone-Property-run": "7"}}
    assert ok["providerResponse"] == {"json": replies["ok"].json, "status": 200,
                                      "headers": {"content-type": "application/json"}}
    start, end = ok["timing"]["startTime"], ok["timing"]["endTime"]
    assert start["seconds"] + start["milliseconds"] / 1000 == pytest.approx(event.started_at,
                                                                             abs=0.002)
    took = (end["seconds"] - start["seconds"]) * 1000 + end["milliseconds"] - start["milliseconds"]
    assert took == pytest.approx(event.latency_ms, abs=2)
    stream = logs["req-stream"]
    assert stream["timing"]["timeToFirstToken"] == proxy.event("req-stream").ttft_ms
    assert stream["providerResponse"]["json"]["choices"][0]["message"]["content"].startswith(HELLO)
    assert logs["req-hit"]["providerRequest"]["meta"]["Helicone-Property-Cache"] == "hit"
