"""GET /v1/models/{model} and GET /model/info: what a client may know about a model, the
deployments behind a configured name without their keys, filtered by the caller's key."""
from __future__ import annotations

import json

from tests.keys_fixtures import ADMIN, bearer, generate, keyed  # noqa: F401  (a fixture)
from tests.provider_fixtures import sdk_for

CONFIG = """
model_list:
  - model_name: embedder
    params:
      model: azure/emb-prod
      base_model: azure/text-embedding-3-small
      api_key: azure-secret-key-do-not-show-0123456789
      api_version: "2024-10-21"
  - model_name: embedder
    params: {model: openai/text-embedding-3-small, api_key: sk-secret-openai-0123456789abcdef}
"""


def test_registry_embedding_model(client):
    r = client.get("/v1/models/text-embedding-3-large")
    assert r.status_code == 200, r.json
    facts = r.json
    assert facts["id"] == "text-embedding-3-large" and facts["object"] == "model"
    assert facts["owned_by"] == facts["provider"] == "openai"
    assert facts["mode"] == "embedding"
    assert facts["dimensions"] == 3072 and facts["max_input_tokens"] == 8191
    assert facts["input_cost_per_token"] == 1.3e-07


def test_chat_and_completion_models(client):
    chat = client.get("/v1/models/gpt-4o").json
    assert chat["mode"] == "chat" and chat["context_window"] and chat["max_output_tokens"]
    assert chat["capabilities"]["supports_tools"] is True
    completion = client.get("/model/info", query_string={"model": "gpt-3.5-turbo-instruct"}).json
    assert completion["data"][0]["mode"] == "completion"
    stablecode = client.get("/v1/models/stabilityai/stablecode-completion-alpha-3b-4k").json
    assert stablecode["mode"] == "completion" and stablecode["provider"] == "huggingface"


def test_deployments_shown_without_keys(make_client, write_config):
    client = make_client(config=write_config(CONFIG))
    r = client.get("/v1/models/embedder")
    assert r.status_code == 200, r.json
    deployments = r.json["deployments"]
    assert [d["model"] for d in deployments] == ["azure/emb-prod", "openai/text-embedding-3-small"]
    assert deployments[0]["api_version"] == "2024-10-21"
    assert deployments[0]["base_model"] == "azure/text-embedding-3-small"
    assert r.json["dimensions"] == 1536
    everything = json.dumps(client.get("/model/info").json)
    assert "secret" not in everything and "api_key" not in everything
    assert "embedder" in everything


def test_sdk_retrieve(client):
    model = sdk_for(client.application).models.retrieve("text-embedding-3-small")
    assert model.id == "text-embedding-3-small" and model.owned_by == "openai"


def test_unknown_model_is_404(client):
    r = client.get("/v1/models/no-such-model")
    assert r.status_code == 404 and r.json["error"]["code"] == "model_not_found"
    assert client.get("/model/info", query_string={"model": "nope"}).status_code == 404


def test_filtered_by_the_callers_key(keyed):
    client = keyed()
    key = generate(client, models=["text-embedding-3-small"])["key"]
    listed = client.get("/model/info", headers=bearer(key)).json["data"]
    assert [m["model_name"] for m in listed] == ["text-embedding-3-small"]
    assert client.get("/v1/models/text-embedding-3-small", headers=bearer(key)).status_code == 200
    assert client.get("/v1/models/gpt-4o", headers=bearer(key)).status_code == 404
    assert client.get("/v1/models/gpt-4o", headers=ADMIN).status_code == 200
