"""The Messages face with the rest of the proxy: model name patterns in config, Anthropic's
model list, virtual keys as Claude Code sends them, the ledger's `api` column and budgets,
the cache, and the async SDK against a real gunicorn."""
from __future__ import annotations

import asyncio

import anthropic
import pytest

from tests.emulators.anthropic import CONTRACT
from tests.keys_fixtures import ADMIN, MASTER, generate, ledger_rows
from tests.messages_fixtures import (anthropic_emu, gemini_emu, http, app, make_app,  # noqa: F401
                                     messages_env, sdk_for)

ALIASES = """
model_list:
  - model_name: "claude-*"
    params: {model: openai/gpt-4o-mini}
  - model_name: "*haiku*"
    params: {model: gemini/gemini-2.5-flash}
  - model_name: claude-sonnet-4-5
    params: {model: anthropic/claude-sonnet-4-5}
"""
USER = [{"role": "user", "content": "hello there"}]


def test_model_name_patterns_most_specific_wins(make_app, write_config, openai_emu,
                                                gemini_emu, anthropic_emu):
    sdk = sdk_for(make_app(config=write_config(ALIASES)))
    routed = {}
    for model in ("claude-opus-5-5", "claude-3-5-haiku-latest", "claude-sonnet-4-5"):
        raw = sdk.messages.with_raw_response.create(model=model, max_tokens=32, messages=USER)
        routed[model] = raw.headers["x-switchboard-provider"]
        assert raw.parse().model == model  # the client's own name comes back
    assert routed == {"claude-opus-5-5": "openai", "claude-3-5-haiku-latest": "gemini",
                      "claude-sonnet-4-5": "anthropic"}
    assert openai_emu.calls[-1].body["model"] == "gpt-4o-mini"


def test_model_list_in_anthropic_shape(make_app, write_config):
    client = make_app(config=write_config(ALIASES)).test_client()
    listed = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).json
    assert CONTRACT.errors("/components/schemas/ListResponse_ModelInfo_", listed) == []
    ids = [m["id"] for m in listed["data"]]
    assert "claude-sonnet-4-5" in ids and "claude-*" not in ids
    assert listed["first_id"] == ids[0] and listed["has_more"] is False
    plain = client.get("/v1/models").json
    assert plain["object"] == "list" and plain["data"][0]["object"] == "model"


def test_model_list_pages_and_one_model_with_the_anthropic_sdk(make_app, write_config):
    sdk = sdk_for(make_app(config=write_config(ALIASES)))
    everything = [m.id for m in sdk.models.list()]
    first = sdk.models.list(limit=2)
    assert [m.id for m in first.data] == everything[:2] and first.has_more is True
    following = sdk.models.list(limit=2, after_id=first.last_id)
    assert [m.id for m in following.data] == everything[2:4]
    before = sdk.models.list(limit=1, before_id=following.first_id)
    assert [m.id for m in before.data] == everything[1:2]
    assert [m.id for m in sdk.models.list(limit=1000)] == everything
    one = sdk.models.retrieve("claude-sonnet-4-5")
    raw = sdk.models.with_raw_response.retrieve("claude-sonnet-4-5").http_response.json()
    assert CONTRACT.errors("/components/schemas/ModelInfo", raw) == []
    assert one.type == "model" and one.id == "claude-sonnet-4-5" and one.max_input_tokens
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk.models.retrieve("no-such-model-7")
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.models.list(limit=0)
    assert bad.value.body["error"]["type"] == "invalid_request_error"


def keyed_app(make_app, env=None):
    return make_app(env={"SWITCHBOARD_MASTER_KEY": MASTER, **(env or {})})


def test_virtual_keys_as_claude_code_sends_them(make_app):
    app = keyed_app(make_app)
    client = app.test_client()
    key = generate(client, max_budget=1.0)
    for auth in ({"x-api-key": key["key"]}, {"Authorization": f"Bearer {key['key']}"}):
        r = client.post("/v1/messages?beta=true", headers=auth, json={
            "model": "gpt-4o-mini", "max_tokens": 32, "messages": USER})
        assert r.status_code == 200, r.json
    r = client.post("/v1/messages", headers={"x-api-key": "sk-sb-wrong"}, json={
        "model": "gpt-4o-mini", "max_tokens": 32, "messages": USER})
    assert r.status_code == 401 and r.json["type"] == "error"
    assert r.json["error"]["type"] == "authentication_error" and r.json["request_id"]
    rows = ledger_rows(client, key["key_id"])
    assert [row["api"] for row in rows] == ["messages", "messages"]
    info = client.get("/key/info", query_string={"key_id": key["key_id"]}, headers=ADMIN).json
    assert info["spend"] == pytest.approx(sum(row["cost"] for row in rows)) and info["spend"] > 0
    by_api = client.get("/spend/apis", headers=ADMIN).json["data"]
    assert {row["api"]: row["requests"] for row in by_api}["messages"] == 3


def test_count_tokens_only_for_the_models_a_key_may_use(make_app, anthropic_emu):
    client = keyed_app(make_app).test_client()
    key = generate(client, models=["gpt-4o-mini"])
    count = {"model": "claude-sonnet-4-5", "messages": USER}
    r = client.post("/v1/messages/count_tokens", headers={"x-api-key": key["key"]}, json=count)
    assert r.status_code == 403 and r.json["error"]["type"] == "permission_error"
    assert not [call for call in anthropic_emu.calls if "count_tokens" in call.path]
    r = client.post("/v1/messages/count_tokens", headers={"x-api-key": key["key"]},
                    json={**count, "model": "gpt-4o-mini"})
    assert r.status_code == 200 and r.json["input_tokens"] > 0


def test_budget_exceeded_is_an_anthropic_429(make_app):
    client = keyed_app(make_app).test_client()
    key = generate(client, max_budget=0.0000001, budget_duration="1h")
    statuses = []
    for _ in range(3):
        r = client.post("/v1/messages", headers={"x-api-key": key["key"]}, json={
            "model": "gpt-4o-mini", "max_tokens": 32, "messages": USER})
        statuses.append(r.status_code)
    assert statuses[-1] == 429 and r.json["error"]["type"] == "rate_limit_error"
    assert int(r.headers["retry-after"]) >= 1


def test_cache_partition_includes_system_blocks_and_tools(make_app, write_config, openai_emu):
    client = make_app(config=write_config("cache: {enabled: true}")).test_client()

    def ask(**extra):
        r = client.post("/v1/messages", json={"model": "gpt-4o-mini", "max_tokens": 32,
                                              "messages": USER, **extra})
        assert r.status_code == 200, r.json
        return r.headers["x-switchboard-cache"], r.json

    assert ask(system="Be brief.")[0] == "miss"
    status, cached = ask(system="Be brief.")
    assert status == "hit" and cached["type"] == "message" and cached["content"][0]["text"]
    assert ask(system=[{"type": "text", "text": "Be long."}])[0] == "miss"
    tool = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    assert ask(system="Be brief.", tools=[tool])[0] == "miss"


def test_async_sdk_against_gunicorn(shared_gunicorn, worker_class, anthropic_emu, openai_emu):
    proxy = shared_gunicorn(worker_class)

    async def run():
        client = anthropic.AsyncAnthropic(base_url=proxy.base_url, api_key="x", max_retries=0)
        reply = await client.messages.create(model="gpt-4o-mini", max_tokens=32, messages=USER)
        async with client.messages.stream(model="claude-sonnet-4-5", max_tokens=32,
                                          messages=USER) as stream:
            text = "".join([piece async for piece in stream.text_stream])
        await client.close()
        return reply, text

    reply, text = asyncio.run(run())
    assert reply.content[0].text == text == "Hello! You said: hello there"
