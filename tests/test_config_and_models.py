"""Config loading, /models, /health and /health/readiness."""
from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from app.service.completion import CompletionService


def test_starts_without_config():
    settings = load_settings({})
    assert settings.deployments == [] and settings.request_timeout == 600


def test_env_references_resolved(write_config):
    path = write_config("""
model_list:
  - model_name: gpt-4
    params: {model: azure/dep, api_key: os.environ/MY_AZURE_KEY, api_base: os.environ/MY_BASE}
""")
    settings = load_settings({"MY_AZURE_KEY": "k1", "MY_BASE": "https://x.example"}, path)
    d = settings.deployments[0]
    assert settings.secret(d.params["api_key"]).value == "k1"
    assert settings.env_value(d.params["api_base"]) == "https://x.example"


@pytest.mark.parametrize("text,words", [
    ("model_list: [{model_name: a}]", "model_list[0] (model_name 'a'): params"),
    ("model_list: [{params: {model: gpt-4}}]", "model_list[0] (model_name '?'): model_name"),
    ("model_list:\n  - {model_name: ok, params: {model: gpt-4}}\n  - {model_name: b, params: {}}",
     "model_list[1] (model_name 'b'): params.model"),
    ("model_list: [{model_name: a, params: {model: gpt-4, timeout: -1}}]", "params.timeout"),
    ("model_list: [{model_name: a, params: {model: gpt-4}, extra: 1}]", "extra"),
    ("modle_list: []", "modle_list"),
    ("request_timeout: fast", "request_timeout"),
    ("- just a list", "mapping"),
    ("model_list: [unclosed", "not valid YAML"),
])
def test_invalid_config_names_the_entry(write_config, text, words):
    with pytest.raises(ConfigError) as info:
        load_settings({}, write_config(text))
    assert words in str(info.value)


def test_malformed_redis_url_stops_the_start_without_echoing_it(provider_env):
    env = {**provider_env, "REDIS_URL": "redis://:hunter2-secret@[bad"}
    with pytest.raises(ConfigError, match="REDIS_URL") as info:
        CompletionService(load_settings(env))
    assert "hunter2" not in str(info.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"SWITCHBOARD_CONFIG": "/nonexistent/switchboard.yaml"})


def test_models_lists_aliases_and_credentialed_registry_models(make_client, write_config):
    config = write_config("""
model_list:
  - model_name: team-gpt
    params: {model: azure/dep1}
  - model_name: team-gpt
    params: {model: azure/dep2}
""")
    r = make_client(config=config).get("/v1/models")
    assert r.status_code == 200
    body = r.json
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids.count("team-gpt") == 1
    assert "gpt-4" in ids and "gpt-3.5-turbo" in ids
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}
        assert model["object"] == "model"
    owners = {m["id"]: m["owned_by"] for m in body["data"]}
    assert owners["team-gpt"] == "azure" and owners["gpt-4"] == "openai"


def test_models_hides_providers_without_credentials(make_client):
    ids = [m["id"] for m in make_client(env={"OPENAI_API_KEY": ""}).get("/models").json["data"]]
    assert "gpt-4" not in ids


def test_health(client):
    assert client.get("/health").json == {"status": "ok"}
    r = client.get("/health/readiness")
    assert r.status_code == 200 and r.json["status"] == "ready"


@pytest.mark.parametrize("model", ["openai/my-llama", "vllm/my-llama", "gpt-4o-mini"])
def test_unset_key_reference_is_401_naming_it_never_a_keyless_call(make_client, write_config,
                                                                  openai_emu, model):
    """`api_key: os.environ/NAME` with NAME unset: a 401 naming NAME, even for a self-hosted
    server that could be called without a key (the operator said it needs one)."""
    config = write_config(f"""
model_list:
  - model_name: local
    params: {{model: {model}, api_base: {openai_emu.base_url}, api_key: os.environ/LOCAL_LLM_KEY}}
""")
    r = make_client(env={"LOCAL_LLM_KEY": ""}, config=config).post(
        "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401, r.json
    assert "LOCAL_LLM_KEY" in r.json["error"]["message"]
    assert r.json["error"]["type"] == "authentication_error"
    assert not openai_emu.calls


def test_set_key_reference_reaches_a_self_hosted_server(make_client, write_config, openai_emu):
    config = write_config(f"""
model_list:
  - model_name: local
    params: {{model: openai/my-llama, api_base: {openai_emu.base_url}, api_key: os.environ/LOCAL_LLM_KEY}}
""")
    r = make_client(env={"LOCAL_LLM_KEY": openai_emu.api_key}, config=config).post(
        "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.json
