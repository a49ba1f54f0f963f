"""Cache hits on Messages requests that Anthropic answered through pass-through: the hit is
Anthropic's own answer again (thinking signatures, citations, cache usage, server tool
blocks), plain or streamed whichever way it was stored, with a fresh message id; the chat
face never gets it, nor another tenant, and a translated entry is still answered from the
chat format."""
from __future__ import annotations

import pytest

from tests.emulators.server import Fault, Reply
from tests.keys_fixtures import MASTER, generate
from tests.messages_fixtures import (anthropic_emu, gemini_emu, make_app,  # noqa: F401
                                     checked_client, messages_env, sdk_for, sse_events)

CACHE = "cache: {enabled: true}\n"
SYSTEM = [{"type": "text", "text": "You are a careful assistant who answers briefly.",
           "cache_control": {"type": "ephemeral"}}]
THINKING = {"model": "claude-sonnet-4-5", "max_tokens": 2048, "system": SYSTEM,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hello there"}]}
SEARCHED = {  # an answer with blocks the chat format has no place for
    "id": "msg_search1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search",
         "input": {"query": "weather paris"}, "caller": {"type": "direct"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01",
         "caller": {"type": "direct"}, "content": [{
             "type": "web_search_result", "url": "https://example.com/paris",
             "title": "Paris weather", "encrypted_content": "EqgfCioIAhgB", "page_age": None}]},
        {"type": "text", "text": "It is sunny in Paris.", "citations": [{
            "type": "web_search_result_location", "url": "https://example.com/paris",
            "title": "Paris weather", "encrypted_index": "Eo8BCioIAhgB",
            "cited_text": "Sunny, 24 C"}]}],
    "stop_reason": "end_turn", "stop_sequence": None, "stop_details": None, "container": None,
    "usage": {"input_tokens": 20, "output_tokens": 9, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 12, "cache_creation": None, "inference_geo": None,
              "server_tool_use": {"web_search_requests": 1, "web_fetch_requests": 0},
              "service_tier": "standard"}}


@pytest.fixture
def http(make_app, write_config):
    return checked_client(make_app(config=write_config(CACHE)))


def post(http, body: dict, headers: dict | None = None, **extra):
    response = http.post("/v1/messages", json={**body, **extra}, headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def same_but_id(first: dict, second: dict) -> None:
    assert second["id"] != first["id"] and second["id"].startswith("msg_")
    assert {**second, "id": first["id"]} == first


def events_of(response) -> list[tuple[str, dict]]:
    return sse_events(response.get_data(as_text=True))


def test_a_hit_is_anthropics_own_answer(http, anthropic_emu):
    first = post(http, THINKING)
    assert first.headers["x-switchboard-cache"] == "miss"
    assert first.json["content"][0]["type"] == "thinking"
    assert first.json["usage"]["cache_creation_input_tokens"] > 0
    hit = post(http, THINKING)
    assert hit.headers["x-switchboard-cache"] == "hit" and len(anthropic_emu.calls) == 1
    same_but_id(first.json, hit.json)  # the signature and the cache usage included
    assert hit.headers["x-switchboard-provider"] == "anthropic"


def test_a_streamed_hit_replays_anthropics_events(http, anthropic_emu):
    first = events_of(post(http, THINKING, stream=True))
    hit_response = post(http, THINKING, stream=True)
    assert hit_response.headers["x-switchboard-cache"] == "hit"
    hit = events_of(hit_response)
    assert len(anthropic_emu.calls) == 1
    assert hit[0][1]["message"]["id"] != first[0][1]["message"]["id"]
    hit[0][1]["message"]["id"] = first[0][1]["message"]["id"]
    assert hit == first
    # the same entry answers a plain request: the Message those events add up to
    plain = post(http, THINKING).json
    assert plain["content"][0]["signature"] == next(
        d["delta"]["signature"] for _, d in first if d.get("delta", {}).get("signature"))
    streamed = sdk_for(http.application).messages.create(**THINKING, stream=True)
    assert [e.type for e in streamed][0] == "message_start"


def test_stored_either_way_served_either_way(http, anthropic_emu):
    sdk = sdk_for(http.application)
    anthropic_emu.fail_next(Fault(reply=Reply(200, SEARCHED)))
    ask = {**THINKING, "thinking": {"type": "disabled"}, "max_tokens": 64}
    assert post(http, ask).json["content"] == SEARCHED["content"]
    # a body kept, re-streamed: the SDK's Message from the events is the body
    with sdk.messages.stream(**ask) as stream:
        final = stream.get_final_message()
    assert final.to_dict()["content"] == SEARCHED["content"]
    assert final.usage.cache_read_input_tokens == 12
    assert final.usage.server_tool_use.web_search_requests == 1
    assert final.id != SEARCHED["id"]
    kinds = [(e, d.get("delta", {}).get("type")) for e, d in events_of(post(http, ask,
                                                                           stream=True))]
    assert ("content_block_delta", "citations_delta") in kinds
    assert len(anthropic_emu.calls) == 1


def test_partitions_are_per_face_and_translated_entries_still_answer(http, anthropic_emu,
                                                                      openai_emu):
    ask = {"model": "claude-sonnet-4-5", "max_tokens": 64,
           "messages": [{"role": "user", "content": "hello there"}]}
    post(http, ask)
    chat = http.post("/v1/chat/completions", json={
        "model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]})
    assert chat.status_code == 200 and chat.headers["x-switchboard-cache"] == "miss"
    assert chat.json["object"] == "chat.completion"
    again = http.post("/v1/chat/completions", json={
        "model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]})
    assert again.headers["x-switchboard-cache"] == "hit"
    assert again.json["choices"][0]["message"]["content"] == chat.json["choices"][0][
        "message"]["content"]
    translated = {**ask, "model": "gpt-4o-mini"}
    post(http, translated)
    hit = post(http, translated, stream=True)
    assert hit.headers["x-switchboard-cache"] == "hit"
    text = "".join(d["delta"]["text"] for _, d in events_of(hit)
                   if d.get("delta", {}).get("type") == "text_delta")
    assert text == "Hello! You said: hello there"


def test_a_kept_answer_serves_only_its_own_tenant(make_app, write_config, anthropic_emu):
    app = make_app(env={"SWITCHBOARD_MASTER_KEY": MASTER}, config=write_config(CACHE))
    client = checked_client(app)
    first, second = generate(client), generate(client)

    def ask(key):
        return post(client, THINKING, stream=True, headers={"x-api-key": key["key"]})

    assert ask(first).headers["x-switchboard-cache"] == "miss"
    assert ask(first).headers["x-switchboard-cache"] == "hit"
    assert ask(second).headers["x-switchboard-cache"] == "miss"
    assert len(anthropic_emu.calls) == 2
