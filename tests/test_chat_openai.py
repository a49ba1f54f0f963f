"""Chat completions through the Flask app against the OpenAI and Azure emulators."""
from __future__ import annotations

USER = [{"role": "user", "content": "ping"}]


def test_openai_completion_shape_and_headers(client, openai_emu):
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! You said: ping",
                                             "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"][
        "completion_tokens"]
    assert r.headers["x-switchboard-model"] == "gpt-4"
    assert r.headers["x-switchboard-provider"] == "openai"
    assert float(r.headers["x-switchboard-overhead-ms"]) >= 0
    assert r.headers["x-request-id"]
    call = openai_emu.calls[-1]
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {openai_emu.api_key}"
    assert call.body == {"model": "gpt-4", "messages": USER}


def test_both_paths_answer(client):
    for path in ("/chat/completions", "/v1/chat/completions"):
        assert client.post(path, json={"model": "gpt-4o", "messages": USER}).status_code == 200


def test_client_request_id_is_echoed(client):
    r = client.post("/chat/completions", json={"model": "gpt-4", "messages": USER},
                    headers={"x-request-id": "trace-abc-123"})
    assert r.headers["x-request-id"] == "trace-abc-123"
    assert client.get("/health").headers["x-request-id"]


def test_params_and_unknown_fields_pass_through(client, openai_emu):
    body = {"model": "openai/gpt-4o-mini", "messages": USER, "temperature": 0.3, "top_p": 0.9,
            "n": 2, "stop": ["zzz"], "max_tokens": 50, "seed": 7, "presence_penalty": 0.5,
            "frequency_penalty": -0.5, "logit_bias": {"50256": -100}, "user": "u-1",
            "response_format": {"type": "text"}, "service_tier": "auto"}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.json
    assert len(r.json["choices"]) == 2
    sent = openai_emu.calls[-1].body
    assert sent == {**body, "model": "gpt-4o-mini"}


def test_proxy_fields_are_not_sent_upstream(client, openai_emu):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": USER, "metadata": {"team": "a"}, "drop_params": True})
    assert r.status_code == 200
    assert set(openai_emu.calls[-1].body) == {"model", "messages"}


def test_max_tokens_gives_length(client):
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER,
                                                  "max_tokens": 2})
    assert r.json["choices"][0]["finish_reason"] == "length"
    assert r.json["choices"][0]["message"]["content"] == "Hello! You"


def test_tool_call_round_trip(client, openai_emu):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "required": ["city"],
                                              "properties": {"city": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "use get_weather"}]
    first = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": messages,
                                                      "tools": tools})
    message = first.json["choices"][0]["message"]
    assert first.json["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    messages += [message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    second = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": messages,
                                                       "tools": tools})
    assert second.json["choices"][0]["message"]["content"] == "The tool returned: sunny"
    assert openai_emu.calls[-1].body["messages"][2]["tool_call_id"] == call["id"]


def test_azure_deployment_from_config(make_client, azure_emu, write_config):
    config = write_config(f"""
model_list:
  - model_name: gpt-4
    params:
      model: azure/my-gpt4-deployment
      api_base: {azure_emu.base_url}
      api_key: os.environ/AZURE_API_KEY
      api_version: "2024-10-21"
""")
    r = make_client(config=config).post("/v1/chat/completions",
                                        json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 200, r.json
    assert r.headers["x-switchboard-provider"] == "azure"
    assert r.headers["x-switchboard-model"] == "azure/my-gpt4-deployment"
    call = azure_emu.calls[-1]
    assert call.path == "/openai/deployments/my-gpt4-deployment/chat/completions"
    assert call.query["api-version"] == ["2024-10-21"]
    assert call.headers["api-key"] == azure_emu.api_key
    assert "authorization" not in call.headers
    assert "model" not in call.body


def test_azure_content_filter_results_are_kept(client, azure_emu):
    r = client.post("/v1/chat/completions", json={"model": "azure/prod-35", "messages": USER})
    assert r.json["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False, "severity": "safe"}
    assert r.json["choices"][0]["content_filter_results"]["violence"]["filtered"] is False
    azure_emu.filter_next = True
    r = client.post("/v1/chat/completions", json={"model": "azure/prod-35", "messages": USER})
    choice = r.json["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == ("content_filter", None)
    assert choice["content_filter_results"]["violence"] == {"filtered": True, "severity": "high"}


def test_azure_by_name_from_environment(client, azure_emu):
    r = client.post("/v1/chat/completions", json={"model": "azure/prod-35", "messages": USER})
    assert r.status_code == 200, r.json
    assert azure_emu.calls[-1].path == "/openai/deployments/prod-35/chat/completions"


def test_openai_compatible_server_from_config(make_client, openai_emu, write_config):
    """vLLM / Ollama / LM Studio: openai/<name> with an api_base and no key needed."""
    config = write_config(f"""
model_list:
  - model_name: local-llama
    params:
      model: openai/meta-llama/Llama-3-8b
      api_base: {openai_emu.base_url}/v1
      api_key: {openai_emu.api_key}
""")
    r = make_client(env={"OPENAI_API_KEY": ""}, config=config).post(
        "/v1/chat/completions", json={"model": "local-llama", "messages": USER})
    assert r.status_code == 200, r.json
    assert openai_emu.calls[-1].body["model"] == "meta-llama/Llama-3-8b"


def test_compatible_server_without_key(make_client, openai_emu, write_config):
    config = write_config(f"""
model_list:
  - model_name: local
    params: {{model: openai/llama3, api_base: "{openai_emu.base_url}/v1"}}
""")
    make_client(env={"OPENAI_API_KEY": ""}, config=config).post(
        "/v1/chat/completions", json={"model": "local", "messages": USER})
    assert "authorization" not in openai_emu.calls[-1].headers
