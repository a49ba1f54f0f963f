"""POST /utils/token_counter and POST /spend/calculate: the same counts and prices the proxy
bills with, and OpenAI-style errors for bad input."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from app.usage.tokens import count_messages, count_text

PRICES = json.loads((Path(__file__).resolve().parents[1] / "app/registry/models.json")
                    .read_text())["models"]
USER = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How much is this going to cost me?", "name": "dana"}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def price(model: str, kind: str) -> Decimal:
    return Decimal(repr(PRICES[model][kind]))


@pytest.fixture
def client(make_client, tmp_path):
    return make_client(env={"SWITCHBOARD_DATA_DIR": str(tmp_path)})


def test_token_counter(client):
    r = client.post("/utils/token_counter", json={"model": "gpt-4o", "messages": USER})
    assert r.status_code == 200
    assert r.json == {"tokens": count_messages("gpt-4o", USER), "model": "gpt-4o",
                      "estimated": False}
    # gpt-4o counts with o200k_base, gpt-4 with cl100k_base; other providers are estimates
    assert client.post("/utils/token_counter", json={"model": "claude-sonnet-4-5",
                                                     "messages": USER}).json["estimated"] is True
    with_tools = client.post("/utils/token_counter",
                             json={"model": "gpt-4o", "messages": USER, "tools": TOOLS}).json
    assert with_tools["tokens"] > r.json["tokens"] and with_tools["estimated"] is True


def test_content_parts_without_text_count_as_no_text(client):
    parts = [{"role": "user", "content": [{"type": "text", "text": "look"},
                                          {"type": "image_url", "image_url": {"url": "x"}},
                                          {"type": "text", "text": 5}]}]
    r = client.post("/utils/token_counter", json={"model": "gpt-4", "messages": parts})
    assert r.status_code == 200
    assert r.json["tokens"] == count_messages("gpt-4", [{"role": "user", "content": "look"}])


def test_prompt_cost_with_a_completion_ceiling(client):
    r = client.post("/spend/calculate", json={"model": "gpt-4", "messages": USER,
                                              "max_tokens": 500})
    assert r.status_code == 200
    prompt = count_messages("gpt-4", USER)
    prompt_cost = prompt * price("gpt-4", "input_cost_per_token")
    completion_cost = 500 * price("gpt-4", "output_cost_per_token")
    body = r.json
    assert (body["prompt_tokens"], body["completion_tokens"]) == (prompt, 500)
    assert Decimal(repr(body["prompt_cost"])) == prompt_cost
    assert Decimal(repr(body["completion_cost"])) == completion_cost
    assert Decimal(repr(body["cost"])) == prompt_cost + completion_cost
    no_ceiling = client.post("/spend/calculate", json={"model": "gpt-4", "messages": USER}).json
    assert no_ceiling["completion_tokens"] == 0 and no_ceiling["cost"] == body["prompt_cost"]


def test_cost_of_a_completion_with_cached_input(client):
    completion = {"id": "x", "object": "chat.completion", "model": "gpt-4o", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020,
                  "prompt_tokens_details": {"cached_tokens": 600}}}
    r = client.post("/spend/calculate", json={"model": "gpt-4o", "completion": completion})
    assert r.status_code == 200
    expected = (400 * price("gpt-4o", "input_cost_per_token")
                + 600 * price("gpt-4o", "cache_read_input_token_cost")
                + 20 * price("gpt-4o", "output_cost_per_token"))
    assert Decimal(repr(r.json["cost"])) == expected
    assert r.json["cached_tokens"] == 600 and r.json["estimated"] is False


def test_a_completion_without_usage_is_counted(client):
    completion = {"choices": [{"message": {"role": "assistant", "content": "Fine, thanks."}}]}
    r = client.post("/spend/calculate", json={"model": "gpt-4", "messages": USER,
                                              "completion": completion})
    assert r.status_code == 200
    prompt, answer = count_messages("gpt-4", USER), count_text("gpt-4", "Fine, thanks.")
    assert (r.json["prompt_tokens"], r.json["completion_tokens"]) == (prompt, answer)
    assert r.json["estimated"] is True
    assert Decimal(repr(r.json["cost"])) == (prompt * price("gpt-4", "input_cost_per_token")
                                            + answer * price("gpt-4", "output_cost_per_token"))


def test_deployment_prices_win(make_client, write_config, openai_emu, tmp_path):
    client = make_client(env={"SWITCHBOARD_DATA_DIR": str(tmp_path)}, config=write_config(f"""
model_list:
  - model_name: tuned
    params: {{model: openai/ft:gpt-4o:acme, api_base: "{openai_emu.base_url}/v1",
             input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
"""))
    completion = {"usage": {"prompt_tokens": 10, "completion_tokens": 3}}
    r = client.post("/spend/calculate", json={"model": "tuned", "completion": completion})
    assert Decimal(repr(r.json["cost"])) == Decimal("0.016")
    assert r.json["model"] == "tuned"


@pytest.mark.parametrize("path, body, status, param", [
    ("/utils/token_counter", {"model": "no-such-model", "messages": USER}, 404, "model"),
    ("/utils/token_counter", {"model": "gpt-4"}, 400, "messages"),
    ("/utils/token_counter", {"messages": USER}, 400, "model"),
    ("/utils/token_counter", {"model": "gpt-4", "messages": [{"role": "robot"}]}, 400,
     "messages[0].role"),
    ("/utils/token_counter", ["not", "an", "object"], 400, None),
    ("/spend/calculate", {"model": "no-such-model", "messages": USER}, 404, "model"),
    ("/spend/calculate", {"model": "gpt-4", "messages": USER, "max_tokens": -1}, 400,
     "max_tokens"),
    ("/spend/calculate", {"model": "gpt-4", "messages": USER, "max_tokens": 10 ** 30}, 400,
     "max_tokens"),
    ("/spend/calculate", {"model": "gpt-4", "completion": "text"}, 400, "completion"),
    ("/spend/calculate", {"model": "gpt-4", "completion": {"usage": {"prompt_tokens": "ten"}}},
     400, "completion.usage.prompt_tokens"),
    ("/spend/calculate", {"model": "gpt-4", "completion": {"usage": {"prompt_tokens": -3}}},
     400, "completion.usage.prompt_tokens"),
    ("/spend/calculate", {"model": "gpt-4", "completion": {"choices": [
        {"message": {"content": 7}}]}, "messages": USER}, 400,
     "completion.choices[0].message.content"),
    ("/spend/calculate", {"model": "gpt-4", "completion": {"choices": []}}, 400, "messages"),
])
def test_bad_input_is_an_openai_error(client, path, body, status, param):
    r = client.post(path, json=body)
    assert r.status_code == status, r.json
    error = r.json["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"


def test_non_json_body_is_415(client):
    r = client.post("/spend/calculate", data="model=gpt-4", content_type="text/plain")
    assert r.status_code == 415 and r.json["error"]["code"] == "unsupported_media_type"


def test_a_model_without_a_price_is_quoted_as_cost_unknown(make_client, tmp_path, write_config,
                                                           openai_emu):
    config = write_config(f"""
model_list:
  - model_name: local
    params: {{model: openai/my-llama, api_base: {openai_emu.base_url}/v1}}
""")
    client = make_client(env={"SWITCHBOARD_DATA_DIR": str(tmp_path)}, config=config)
    unpriced = client.post("/spend/calculate", json={"model": "local", "messages": USER}).json
    assert (unpriced["cost"], unpriced["cost_unknown"]) == (0, True)
    priced = client.post("/spend/calculate", json={"model": "gpt-4o", "messages": USER}).json
    assert priced["cost"] > 0 and priced["cost_unknown"] is False
