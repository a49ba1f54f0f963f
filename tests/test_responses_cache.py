"""Cache hits on Responses requests that OpenAI answered through pass-through: the hit is
OpenAI's own response again (reasoning items with their encrypted content, annotations,
built-in tool items), plain or streamed whichever way it was stored, under a new response
id the proxy's store keeps apart."""
from __future__ import annotations

import json

import pytest

from tests.emulators.openai_responses import CONTRACT, EVENT
from tests.emulators.server import Fault, Reply
from tests.provider_fixtures import proxy_app, sdk_for

ASK = {"model": "o4-mini", "input": "hello there", "reasoning": {"summary": "auto"},
       "include": ["reasoning.encrypted_content"]}
SEARCHED = {
    "id": "resp_0123abcd", "object": "response", "created_at": 1767000000,
    "status": "completed", "completed_at": 1767000001, "error": None,
    "incomplete_details": None, "instructions": None, "model": "gpt-4o-mini",
    "output": [
        {"id": "ws_01", "type": "web_search_call", "status": "completed",
         "action": {"type": "search", "query": "weather paris"}},
        {"id": "msg_01", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "It is sunny in Paris.", "logprobs": [],
                      "annotations": [{"type": "url_citation", "url": "https://example.com",
                                       "title": "Paris weather", "start_index": 0,
                                       "end_index": 21}]}]}],
    "parallel_tool_calls": True, "previous_response_id": None, "max_output_tokens": None,
    "reasoning": {"effort": None, "summary": None}, "store": True, "temperature": 1.0,
    "top_p": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
    "tools": [{"type": "web_search"}], "truncation": "disabled", "metadata": {},
    "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
              "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
              "total_tokens": 19}}


@pytest.fixture
def client(provider_env, write_config):
    app = proxy_app(provider_env, write_config("cache: {enabled: true}\n"))
    yield app.test_client()
    app.extensions["switchboard"].close(5.0)


def create(client, body: dict, **extra):
    response = client.post("/v1/responses", json={**body, **extra})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def events_of(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.get_data(as_text=True).splitlines()
            if line.startswith("data: ")]


def test_a_hit_is_openais_own_response_under_a_new_id(client, openai_emu):
    first = create(client, ASK)
    assert first.json["output"][0]["encrypted_content"]
    hit = create(client, ASK)
    assert hit.headers["x-switchboard-cache"] == "hit" and len(openai_emu.calls) == 1
    assert hit.json["id"] != first.json["id"]
    assert {**hit.json, "id": first.json["id"]} == first.json
    assert client.get(f"/v1/responses/{hit.json['id']}").json["output"] == first.json["output"]


def test_a_streamed_hit_replays_openais_events(client, openai_emu):
    first = events_of(create(client, ASK, stream=True))
    hit = events_of(create(client, ASK, stream=True))
    assert len(openai_emu.calls) == 1
    new_id = hit[0]["response"]["id"]
    assert new_id != first[0]["response"]["id"]
    for event in hit:
        if "response" in event:
            assert event["response"]["id"] == new_id
            event["response"]["id"] = first[0]["response"]["id"]
    assert hit == first
    plain = create(client, ASK).json  # the same entry, asked for plainly
    assert plain["output"] == first[-1]["response"]["output"] and plain["id"] != new_id


def test_a_kept_response_is_restreamed(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(200, SEARCHED)))
    ask = {"model": "gpt-4o-mini", "input": "weather in paris?", "tools": [{"type": "web_search"}]}
    create(client, ask)
    events = events_of(create(client, ask, stream=True))
    problems = [p for event in events for p in CONTRACT.errors(EVENT, event)]
    assert problems == []
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert "response.output_text.annotation.added" in [e["type"] for e in events]
    final = events[-1]["response"]
    assert {**final, "id": SEARCHED["id"]} == SEARCHED and final["id"] != SEARCHED["id"]
    with sdk_for(client.application).responses.stream(**ask) as stream:
        assert stream.get_final_response().output_text == "It is sunny in Paris."
    assert len(openai_emu.calls) == 1
