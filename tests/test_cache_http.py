"""The exact cache through the completion endpoint, on the disk backend and on a real Redis:
what counts as the same request, per-request controls, TTL, what is never stored, streams,
and what the events record."""
from __future__ import annotations

import time

import pytest

from app.cache.types import CacheRequest
from tests.emulators.openai import openai_error
from tests.emulators.server import Fault, Reply, sse
from tests.keys_fixtures import ADMIN, bearer, generate, keyed  # noqa: F401  (a fixture)
from tests.provider_fixtures import sdk_for, sse_frames, streamed_text
from tests.test_cache_fixtures import (MODEL, QUESTION, ask, backend, cached,  # noqa: F401
                                       status)


def test_hit_returns_the_stored_answer_with_new_id_and_no_cost(cached, openai_emu):
    client = cached()
    first = ask(client)
    assert status(first) == "miss" and "x-switchboard-cache-key" not in first.headers
    assert float(first.headers["x-switchboard-cost"]) > 0
    second = ask(client)
    assert status(second) == "hit"
    assert len(openai_emu.calls) == 1
    one, two = first.get_json(), second.get_json()
    assert two["choices"] == one["choices"] and two["usage"] == one["usage"]
    assert two["id"] != one["id"] and two["created"] >= one["created"]
    assert second.headers["x-switchboard-cost"] == "0"
    assert len(second.headers["x-switchboard-cache-key"]) == 32
    assert "x-switchboard-cache-similarity" not in second.headers


def test_same_request_whatever_the_json_spelling(cached, openai_emu):
    client = cached()
    bodies = [
        '{"model": "%s", "temperature": 1, "messages": [{"role": "user", "content": "hi"}]}',
        '{"messages":[{"content":"hi","role":"user"}],"temperature":1.0,"model":"%s"}',
        '{\n  "temperature" : 1.0 ,\n  "model" : "%s",\n  "messages" : [ {"content": "hi",'
        ' "role": "user"} ], "user": "someone-else"\n}',
    ]
    answers = [client.post("/v1/chat/completions", data=body % MODEL,
                           content_type="application/json") for body in bodies]
    assert [status(a) for a in answers] == ["miss", "hit", "hit"]
    streamed = ask(client, "hi", temperature=1, stream=True)
    assert status(streamed) == "hit"           # stream, stream_options and user only deliver
    assert len(openai_emu.calls) == 1


@pytest.mark.parametrize("change", [
    {"temperature": 0.2}, {"max_tokens": 50}, {"seed": 7}, {"stop": ["\n"]},
    {"presence_penalty": 0.5}, {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]},
    {"logit_bias": {"50256": -100}}, {"cache": {"namespace": "team-b"}},
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": QUESTION}]},
    {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
                  {"role": "user", "content": QUESTION}]},
    {"model": "gpt-4o"},
], ids=lambda change: next(iter(change)))
def test_what_changes_the_answer_changes_the_key(cached, openai_emu, change):
    client = cached()
    assert status(ask(client, temperature=1)) == "miss"
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}],
            "temperature": 1, **change}
    assert status(client.post("/v1/chat/completions", json=body)) == "miss"
    assert status(client.post("/v1/chat/completions", json=body)) == "hit"
    assert len(openai_emu.calls) == 2


def test_request_controls_in_body_and_headers(cached, openai_emu):
    client = cached()
    assert status(ask(client, cache={"no-store": True})) == "miss"
    assert status(ask(client, headers={"Cache-Control": "max-age=0, No-Store"})) == "miss"
    assert status(ask(client)) == "miss"                              # stored now
    assert status(ask(client, cache={"no-cache": True})) == "miss"    # not read, stored again
    assert status(ask(client, headers={"Cache-Control": "no-cache"})) == "miss"
    assert status(ask(client, cache={"no-cache": True, "no-store": True})) == "off"
    assert status(ask(client, cache={"no-store": True},
                      headers={"Cache-Control": "no-cache"})) == "off"
    assert status(ask(client)) == "hit"
    assert len(openai_emu.calls) == 7


@pytest.mark.parametrize("options, param", [
    (True, "cache"), ({"ttl": "60"}, "cache.ttl"), ({"ttl": 0}, "cache.ttl"),
    ({"ttl": True}, "cache.ttl"), ({"s-maxage": -1}, "cache.s-maxage"),
    ({"no-cache": "yes"}, "cache.no-cache"), ({"no-store": 1}, "cache.no-store"),
    ({"semantic": None}, "cache.semantic"), ({"namespace": 5}, "cache.namespace"),
    ({"namespace": ""}, "cache.namespace"), ({"max-age": 5}, "cache.max-age"),
])
def test_bad_cache_options_are_400(cached, client, openai_emu, options, param):
    for proxy in (cached(), client):             # checked whether the cache is on or not
        answer = ask(proxy, cache=options)
        assert answer.status_code == 400
        error = answer.get_json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
    assert openai_emu.calls == []


def test_ttl_and_s_maxage(cached, openai_emu):
    client = cached("  ttl: 0.6\n")
    assert status(ask(client)) == "miss"
    assert status(ask(client, "Long lived", cache={"ttl": 60})) == "miss"
    assert status(ask(client)) == "hit"
    time.sleep(0.8)
    assert status(ask(client)) == "miss"                        # the config's 0.6 s are over
    assert status(ask(client, "Long lived")) == "hit"           # its own 60 s are not
    assert status(ask(client, "Long lived", cache={"s-maxage": 0.5})) == "miss"  # too old
    assert status(ask(client, "Long lived", cache={"s-maxage": 0.5})) == "hit"   # refreshed
    assert len(openai_emu.calls) == 4


def test_errors_filtered_and_cut_answers_are_never_stored(cached, openai_emu):
    client = cached()
    openai_emu.fail_next(Fault(reply=openai_error(500, "boom", "server_error")))
    assert ask(client, num_retries=0).status_code == 502
    filtered = {"id": "chatcmpl-f", "object": "chat.completion", "created": 1, "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "I can"},
                             "finish_reason": "content_filter", "logprobs": None}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    openai_emu.fail_next(Fault(reply=Reply(200, filtered)))
    assert status(ask(client)) == "miss"
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Canb"},
                          "finish_reason": None}]}
    openai_emu.fail_next(Fault(reply=Reply(200, events=[sse(chunk)],
                                           content_type="text/event-stream")))
    cut = ask(client, stream=True, num_retries=0)
    assert "stream_truncated" in cut.get_data(as_text=True)
    assert status(ask(client)) == "miss"        # none of the three was kept
    assert status(ask(client)) == "hit"


def test_streams_are_stored_whole_and_replayed_as_sse(cached, openai_emu):
    sdk = sdk_for(cached().application)
    words = dict(messages=[{"role": "user", "content": "count the words"}], model=MODEL)
    first = list(sdk.chat.completions.create(**words, stream=True,
                                             stream_options={"include_usage": True}))
    raw = sdk.chat.completions.with_raw_response.create(
        **words, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-switchboard-cache"] == "hit"
    replayed = list(raw.parse())
    assert streamed_text(replayed) == streamed_text(first) == "Hello! You said: count the words"
    assert replayed[-1].usage.total_tokens == first[-1].usage.total_tokens > 0
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == "stop"
    plain = sdk.chat.completions.with_raw_response.create(**words)
    assert plain.headers["x-switchboard-cache"] == "hit"
    assert plain.parse().choices[0].message.content == "Hello! You said: count the words"
    assert len(openai_emu.calls) == 1


def test_replayed_stream_frames(cached, openai_emu):
    client = cached()
    assert status(ask(client, "two words")) == "miss"
    frames = sse_frames(ask(client, "two words", stream=True))
    assert {f["object"] for f in frames} == {"chat.completion.chunk"}
    assert len({f["id"] for f in frames}) == 1
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant",
                                                "content": "Hello! You said: two words"}
    assert frames[-1]["choices"][0]["finish_reason"] == "stop"


def test_events_record_hits_and_savings(cached, openai_emu):
    client = cached()
    service = client.application.extensions["switchboard"]
    events = []
    service.events.subscribe(events.append)
    ask(client), ask(client)
    miss, hit = events
    assert (miss.cache, hit.cache) == ("miss", "hit")
    assert miss.cost > 0 and hit.cost == 0 and hit.saved_cost == pytest.approx(miss.cost)
    assert hit.prompt_tokens == miss.prompt_tokens
    assert hit.response["choices"] == miss.response["choices"]


def test_the_cache_itself_refuses_unfinished_answers(cached, openai_emu):
    """The second guard, behind the service's own: whatever a caller hands `store`, only a
    whole chat.completion is kept."""
    cache = cached().application.extensions["switchboard"].cache
    good = {"id": "c", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Canberra."}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}
    broken = [{**good, "choices": [{**good["choices"][0], "finish_reason": "content_filter"}]},
              {**good, "choices": [{**good["choices"][0], "finish_reason": None}]},
              {**good, "choices": []}, {"error": {"message": "boom"}}, None]
    for number, response in enumerate([*broken, good]):
        request = CacheRequest(MODEL, {"messages": [{"role": "user", "content": f"q{number}"}]})
        cache.store(request, response, MODEL, "openai", 0.001)
        found = cache.lookup(request)
        assert (found is not None) == (response is good), response
    assert found.response == good and found.cost == 0.001 and found.status == "hit"


def test_virtual_keys_do_not_share_entries(keyed, write_config, tmp_path, openai_emu):
    client = keyed(config=write_config(f"cache:\n  enabled: true\n  dir: {tmp_path / 'c'}\n"))
    first, second = generate(client)["key"], generate(client)["key"]
    seen = [status(ask(client, headers=bearer(key))) for key in (first, first, second, second)]
    assert seen == ["miss", "hit", "miss", "hit"]
    assert client.get("/cache/stats", headers=bearer(first)).status_code == 403  # master only
    assert client.get("/cache/stats", headers=ADMIN).get_json()["entries"] == 2
