"""POST /v1/embeddings with the official openai SDK, langchain-openai and plain HTTP,
against the OpenAI and Azure emulators: every input shape, both encodings, batch splitting
and order, the per-input cache, token limits, fallbacks and bad input."""
from __future__ import annotations

import base64
import struct

import httpx2
import pytest

from tests.emulators.model import embed_text
from tests.emulators.operations import text_of
from tests.provider_fixtures import proxy_app

MODEL = "text-embedding-3-small"


def expected(item, dimensions=1536) -> list[float]:
    return embed_text(text_of(item), dimensions)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b))


@pytest.mark.parametrize("given", ["hello world", ["hello", "world"], [15339, 1917],
                                   [[15339], [1917, 0]]])
def test_sdk_each_input_shape(sdk, openai_emu, given):
    answer = sdk.embeddings.create(model=MODEL, input=given, encoding_format="float")
    items = given if isinstance(given, list) and not isinstance(given[0], int) else [given]
    assert [d.index for d in answer.data] == list(range(len(items)))
    for item, data in zip(items, answer.data):
        assert close(data.embedding, expected(item))
    assert answer.object == "list"
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0
    sent = openai_emu.calls[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body["input"] == items and sent.body["encoding_format"] == "float"


def test_sdk_base64_encoding(sdk):
    """The SDK asks for base64 by default and decodes it itself."""
    answer = sdk.embeddings.create(model=MODEL, input=["a b c"])
    assert close(answer.data[0].embedding, expected("a b c"))


def test_base64_over_http_is_float32_little_endian(app):
    r = app.test_client().post("/v1/embeddings", json={
        "model": MODEL, "input": "x", "encoding_format": "base64"})
    assert r.status_code == 200, r.json
    raw = base64.b64decode(r.json["data"][0]["embedding"])
    assert close(list(struct.unpack(f"<{len(raw) // 4}f", raw)), expected("x"))
    assert r.headers["x-switchboard-provider"] == "openai"
    assert r.headers["x-switchboard-cache"] == "off"
    assert float(r.headers["x-switchboard-cost"]) > 0


def test_dimensions_pass_through(sdk, openai_emu):
    answer = sdk.embeddings.create(model=MODEL, input="hi", dimensions=8, encoding_format="float")
    assert len(answer.data[0].embedding) == 8
    assert openai_emu.calls[-1].body["dimensions"] == 8


def test_both_paths(app):
    client = app.test_client()
    for path in ("/embeddings", "/v1/embeddings"):
        assert client.post(path, json={"model": MODEL, "input": "x"}).status_code == 200


def test_azure_deployment(make_client, azure_emu, write_config):
    config = write_config("""
model_list:
  - model_name: embedder
    params: {model: azure/my-embedder, base_model: azure/text-embedding-3-small}
""")
    r = make_client(config=config).post("/v1/embeddings", json={"model": "embedder",
                                                                 "input": ["a", "b"]})
    assert r.status_code == 200, r.json
    call = azure_emu.calls[-1]
    assert call.path == "/openai/deployments/my-embedder/embeddings"
    assert "model" not in call.body
    assert len(r.json["data"]) == 2


# -- the per-input cache ----------------------------------------------------------------
from tests.keys_fixtures import ADMIN, bearer, generate, keyed, ledger_rows  # noqa: E402,F401
from tests.test_cache_fixtures import backend, cached  # noqa: E402,F401  (fixtures)


# A config line after the cache section: Redis calls may wait 1 s on this busy machine (the
# 50 ms default would trip the breaker under load and turn hits into misses).
PATIENT_REDIS = "redis_timeout: 1\n"


def embed(client, inputs, headers=None, **extra):
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": inputs, **extra},
                    headers=headers or {})
    assert r.status_code == 200, r.json
    return r


def test_partial_hit_sends_only_new_inputs(cached, openai_emu):
    client = cached(PATIENT_REDIS)
    first = embed(client, ["alpha", "beta"])
    assert first.headers["x-switchboard-cache"] == "miss"
    assert first.headers["x-switchboard-cache-hits"] == "0"
    full_cost = float(first.headers["x-switchboard-cost"])
    second = embed(client, ["beta", "gamma", "alpha"])
    assert second.headers["x-switchboard-cache"] == "partial"
    assert second.headers["x-switchboard-cache-hits"] == "2"
    assert openai_emu.calls[-1].body["input"] == ["gamma"]
    assert [d["embedding"] for d in second.json["data"]] == [
        expected("beta"), expected("gamma"), expected("alpha")]
    assert second.json["usage"]["prompt_tokens"] == 3     # every input, cached or not
    assert float(second.headers["x-switchboard-cost"]) == pytest.approx(full_cost / 2)
    third = embed(client, ["gamma", "alpha"], encoding_format="base64")
    assert third.headers["x-switchboard-cache"] == "hit"
    assert third.headers["x-switchboard-cost"] == "0"
    assert len(openai_emu.calls) == 2


def test_model_and_dimensions_are_in_the_key(cached, openai_emu):
    client = cached(PATIENT_REDIS)
    embed(client, ["same"])
    assert embed(client, ["same"], dimensions=8).headers["x-switchboard-cache"] == "miss"
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-large", "input": "same"})
    assert r.headers["x-switchboard-cache"] == "miss"
    assert embed(client, ["same"], dimensions=8).headers["x-switchboard-cache"] == "hit"
    assert len(openai_emu.calls) == 3


def test_no_cache_header_sends_everything(cached, openai_emu):
    client = cached(PATIENT_REDIS)
    embed(client, ["x", "y"])
    r = embed(client, ["x", "y"], headers={"Cache-Control": "no-cache"})
    assert r.headers["x-switchboard-cache"] == "miss"
    assert openai_emu.calls[-1].body["input"] == ["x", "y"]


# -- keys, budgets, ledger ----------------------------------------------------------------
def test_key_models_budget_and_ledger(keyed, openai_emu):
    client = keyed()
    made = generate(client, models=[MODEL], max_budget=1.0)
    headers = bearer(made["key"])
    r = embed(client, ["one two", "three"], headers=headers)
    cost = float(r.headers["x-switchboard-cost"])
    assert cost == pytest.approx(3 * 2e-08)
    refused = client.post("/v1/embeddings", headers=headers,
                          json={"model": "text-embedding-3-large", "input": "x"})
    assert refused.status_code == 403 and refused.json["error"]["code"] == "model_not_allowed"
    client.application.extensions["switchboard"].close(5.0)
    info = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN).json
    assert info["spend"] == pytest.approx(cost)
    rows = ledger_rows(client, made["key_id"])
    answered = [row for row in rows if row["status"] == 200]
    assert answered[0]["prompt_tokens"] == 3 and answered[0]["completion_tokens"] == 0


def test_tpm_counts_input_tokens(keyed, openai_emu):
    client = keyed()
    headers = bearer(generate(client, tpm_limit=5)["key"])
    assert embed(client, ["one two three"], headers=headers).status_code == 200
    r = client.post("/v1/embeddings", headers=headers,
                    json={"model": MODEL, "input": ["four five six"]})
    assert r.status_code == 429 and r.json["error"]["code"] == "rate_limit_exceeded"


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("body, param", [
    ({"model": MODEL}, "input"),
    ({"model": MODEL, "input": ""}, "input"),
    ({"model": MODEL, "input": []}, "input"),
    ({"model": MODEL, "input": ["a", 3]}, "input[1]"),
    ({"model": MODEL, "input": [[1, 2], "a"]}, "input[1]"),
    ({"model": MODEL, "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": MODEL, "input": "a", "dimensions": 0}, "dimensions"),
    ({"input": "a"}, "model"),
])
def test_bad_input_is_a_400(app, body, param):
    r = app.test_client().post("/v1/embeddings", json=body)
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == param
    assert r.json["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_a_404(app):
    r = app.test_client().post("/v1/embeddings", json={"model": "no-such-model", "input": "a"})
    assert r.status_code == 404


def test_langchain_openai_embeddings(app):
    from langchain_openai import OpenAIEmbeddings

    embedder = OpenAIEmbeddings(model=MODEL, api_key="x", base_url="http://proxy.test/v1",
                                max_retries=0, check_embedding_ctx_length=False,
                                http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))
    docs = embedder.embed_documents(["first doc", "second doc"])
    assert [close(d, expected(t)) for d, t in zip(docs, ["first doc", "second doc"])] == [True] * 2
    assert close(embedder.embed_query("a query"), expected("a query"))


# -- fallbacks: only to compatible embedding models ------------------------------------------
from app.config import ConfigError  # noqa: E402
from tests.emulators.server import Fault, Reply  # noqa: E402


def test_configured_fallback_with_other_dimensions_stops_the_start(provider_env, write_config):
    config = write_config("fallbacks: {text-embedding-3-small: [text-embedding-3-large]}\n")
    with pytest.raises(ConfigError, match="text-embedding-3-large.*3072"):
        proxy_app(provider_env, config)
    config = write_config("fallbacks: {text-embedding-3-small: [gpt-4o]}\n")
    with pytest.raises(ConfigError, match="not an embedding model"):
        proxy_app(provider_env, config)


def test_falls_back_to_a_compatible_model(provider_env, write_config, openai_emu, azure_emu):
    config = write_config("""
model_list:
  - model_name: azure-small
    params: {model: azure/emb, base_model: azure/text-embedding-3-small}
fallbacks: {text-embedding-3-small: [azure-small]}
default_fallbacks: [gpt-4o-mini]
""")
    client = proxy_app(provider_env, config).test_client()
    openai_emu.fail_next(Fault(Reply(500, {"error": {"message": "down", "type": "server_error",
                                                     "param": None, "code": None}}), times=9))
    r = client.post("/v1/embeddings", json={"model": MODEL, "input": ["x"], "num_retries": 0})
    assert r.status_code == 200, r.json
    assert r.headers["x-switchboard-model"] == "azure/emb"
    assert r.headers["x-switchboard-attempted-fallbacks"] == "1"
    assert azure_emu.calls[-1].path == "/openai/deployments/emb/embeddings"


def test_request_fallback_with_other_dimensions_is_a_400(app, openai_emu):
    r = app.test_client().post("/v1/embeddings", json={
        "model": MODEL, "input": "x", "fallbacks": ["text-embedding-3-large"]})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "incompatible_fallback"
    assert not openai_emu.calls


def test_events_carry_the_answer_without_its_vectors(app, openai_emu):
    seen = []
    app.extensions["switchboard"].events.subscribe(seen.append)
    embed(app.test_client(), ["one", "two"], metadata={"team": "search"})
    event = seen[-1]
    assert event.requested_model == MODEL and event.status == 200
    assert event.prompt_tokens == 2 and event.cost > 0
    assert event.response["data"] == [{"object": "embedding", "index": 0, "dimensions": 1536},
                                      {"object": "embedding", "index": 1, "dimensions": 1536}]
    assert event.metadata == {"team": "search"}


def test_openai_batch_over_2048_inputs_is_split(app, openai_emu):
    texts = [f"t{i}" for i in range(2100)]
    r = embed(app.test_client(), texts, dimensions=4)
    assert [d["embedding"] for d in r.json["data"]] == [expected(t, 4) for t in texts]
    assert sorted(len(c.body["input"]) for c in openai_emu.calls) == [52, 2048]


def test_ledger_and_spend_show_embeddings_and_completions_apart_from_chat(cached, openai_emu):
    client = cached(PATIENT_REDIS)
    assert client.post("/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    embed(client, ["alpha", "beta"])
    partial = embed(client, ["alpha", "gamma"])
    assert partial.headers["x-switchboard-cache"] == "partial"
    assert client.post("/v1/completions", json={"model": "gpt-3.5-turbo-instruct",
                                                "prompt": "x"}).status_code == 200
    assert client.post("/v1/embeddings", json={"model": MODEL}).status_code == 400
    client.application.extensions["switchboard"].close(5.0)
    apis = {row["api"]: row for row in client.get("/spend/apis").json["data"]}
    assert (apis["chat"]["requests"], apis["completions"]["requests"]) == (1, 1)
    assert (apis["embeddings"]["requests"], apis["embeddings"]["errors"]) == (3, 1)
    assert apis["embeddings"]["prompt_tokens"] == 3 and apis["embeddings"]["completion_tokens"] == 0
    assert apis["embeddings"]["saved_cost"] == pytest.approx(2e-08)
    rows = client.get("/spend/logs", query_string={"api": "embeddings"}).json["data"]
    assert sorted(row["cache"] for row in rows) == ["miss", "off", "partial"]   # off: the 400
