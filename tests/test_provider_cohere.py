"""Cohere (v2 chat) through the proxy: routing, usage and parameters, the official openai SDK
in front, the Cohere emulator behind checking every request against Cohere's contract."""
from __future__ import annotations


import pytest

from tests.emulators.cohere import CohereEmulator
from tests.provider_fixtures import WEATHER, provider_fixtures, sdk_for, sent

from tests.cohere_cases import (USER, prompt_tokens)

cohere_emu, cohere_env, make_proxy, proxy, http, sdk = provider_fixtures(CohereEmulator, "cohere")


# -- plain chat, routing, usage ------------------------------------------------------------
def test_command_nightly_plain_chat(sdk, cohere_emu):
    raw = sdk.chat.completions.with_raw_response.create(model="command-nightly", messages=USER)
    result = raw.parse()
    assert raw.headers["x-switchboard-provider"] == "cohere"
    assert raw.headers["x-switchboard-model"] == "command-nightly"
    assert result.object == "chat.completion" and result.id.startswith("chatcmpl-")
    assert result.model == "command-nightly"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].message.content == "Hello! You said: ping"
    assert result.choices[0].message.tool_calls is None
    assert result.choices[0].finish_reason == "stop"
    # usage.tokens (template included) wins over billed_units; cached_tokens is kept
    assert result.usage.prompt_tokens == prompt_tokens("ping")
    assert result.usage.completion_tokens == 4
    assert result.usage.total_tokens == prompt_tokens("ping") + 4
    assert result.usage.prompt_tokens_details.cached_tokens == 0
    call = cohere_emu.calls[-1]
    assert call.path == "/v2/chat"
    assert call.headers["authorization"] == f"Bearer {cohere_emu.api_key}"
    assert call.body == {"model": "command-nightly", "messages": USER}


@pytest.mark.parametrize("name, upstream", [("cohere/command-r-plus", "command-r-plus"),
                                            ("command-a-03-2025", "command-a-03-2025"),
                                            ("command-brand-new", "command-brand-new")])
def test_names_route_to_cohere(sdk, cohere_emu, name, upstream):
    result = sdk.chat.completions.create(model=name, messages=USER)
    assert result.choices[0].message.content == "Hello! You said: ping"
    assert sent(cohere_emu)["model"] == upstream


def test_several_system_messages_stay_where_they_stand(sdk, cohere_emu):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "text", "text": "Use "},
                                                  {"type": "text", "text": "French."}]},
                {"role": "assistant", "content": "Hello! You said: hi"},
                {"role": "system", "content": "Answer in one line."},
                {"role": "user", "content": "and now?"}]
    result = sdk.chat.completions.create(model="command-r", messages=messages)
    assert result.choices[0].message.content == "Hello! You said: and now?"
    assert sent(cohere_emu)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Use French."},
        {"role": "assistant", "content": "Hello! You said: hi"},
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "and now?"}]
    assert result.usage.prompt_tokens == prompt_tokens(
        "Be brief.", "hi", "Use French.", "Hello! You said: hi", "Answer in one line.", "and now?")


def test_multi_turn_with_content_parts_and_images(sdk, cohere_emu):
    messages = [{"role": "user", "content": "first"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello! You said: first"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                        "detail": "low"}},
                    {"type": "text", "text": "this"}]}]
    result = sdk.chat.completions.create(model="command-a-03-2025", messages=messages)
    assert result.choices[0].message.content == "Hello! You said: what is this"
    assert sent(cohere_emu)["messages"] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "Hello! You said: first"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                "detail": "low"}},
            {"type": "text", "text": "this"}]}]


def test_content_part_cohere_cannot_take_is_a_400(http, cohere_emu):
    r = http.post("/v1/chat/completions", json={"model": "command-r", "messages": [
        {"role": "user", "content": [{"type": "input_audio",
                                      "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[0].content[0]"
    assert "input_audio" in r.json["error"]["message"]
    assert not cohere_emu.calls


# -- parameters ----------------------------------------------------------------------------
def test_stop_maps_to_stop_sequences(sdk, cohere_emu):
    result = sdk.chat.completions.create(model="command-r", messages=USER, stop="said")
    assert result.choices[0].message.content == "Hello! You "
    assert result.choices[0].finish_reason == "stop"
    assert sent(cohere_emu)["stop_sequences"] == ["said"]
    sdk.chat.completions.create(model="command-r", messages=USER, stop=["x", "y"])
    assert sent(cohere_emu)["stop_sequences"] == ["x", "y"]


def test_max_tokens_reached_gives_length(sdk, cohere_emu):
    result = sdk.chat.completions.create(model="command-nightly", messages=USER, max_tokens=2)
    assert result.choices[0].message.content == "Hello! You"
    assert result.choices[0].finish_reason == "length"
    assert result.usage.completion_tokens == 2
    assert sent(cohere_emu)["max_tokens"] == 2


def test_max_completion_tokens_wins_over_max_tokens(sdk, cohere_emu):
    sdk.chat.completions.create(model="command-r", messages=USER, max_completion_tokens=3,
                                max_tokens=50)
    assert sent(cohere_emu)["max_tokens"] == 3


def test_parameters_are_mapped(sdk, cohere_emu):
    sdk.chat.completions.create(
        model="command-r", messages=USER, temperature=0.4, top_p=0.8, seed=42,
        frequency_penalty=0.2, presence_penalty=0.1, user="u-1", n=1, parallel_tool_calls=True,
        extra_body={"top_k": 40, "safety_mode": "OFF"})
    assert sent(cohere_emu) == {
        "model": "command-r", "messages": USER, "temperature": 0.4, "p": 0.8, "seed": 42,
        "frequency_penalty": 0.2, "presence_penalty": 0.1, "k": 40, "safety_mode": "OFF"}


@pytest.mark.parametrize("top_p, p", [(1, 0.99), (1.0, 0.99), (0, 0.01), (0.5, 0.5)])
def test_top_p_is_clamped_into_cohere_range(sdk, cohere_emu, top_p, p):
    sdk.chat.completions.create(model="command-r", messages=USER, top_p=top_p)
    assert sent(cohere_emu)["p"] == p


@pytest.mark.parametrize("response_format, wire", [
    ({"type": "text"}, {"type": "text"}),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}},
     {"type": "json_object", "json_schema": {
         "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}}),
])
def test_response_format(sdk, cohere_emu, response_format, wire):
    sdk.chat.completions.create(model="command-r", messages=USER, response_format=response_format)
    assert sent(cohere_emu)["response_format"] == wire


def test_logprobs(sdk, cohere_emu):
    result = sdk.chat.completions.create(model="command-r", messages=USER, logprobs=True,
                                         top_logprobs=0)
    entries = result.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == "Hello! You said: ping"
    assert all(e.logprob == -0.25 and e.top_logprobs == [] for e in entries)
    assert entries[1].bytes == list(b" You")
    assert sent(cohere_emu)["logprobs"] is True


@pytest.mark.parametrize("extra, param", [
    ({"logit_bias": {"42": 5}}, "logit_bias"),
    ({"n": 2}, "n"),
    ({"temperature": 1.5}, "temperature"),
    ({"frequency_penalty": -0.5}, "frequency_penalty"),
    ({"presence_penalty": 1.5}, "presence_penalty"),
    ({"seed": -1}, "seed"),
    ({"logprobs": True, "top_logprobs": 3}, "top_logprobs"),
    ({"parallel_tool_calls": False, "tools": [WEATHER]}, "parallel_tool_calls"),
    ({"tools": [WEATHER], "tool_choice": {"type": "allowed_tools",
                                          "allowed_tools": {"mode": "auto", "tools": []}}},
     "tool_choice"),
    ({"response_format": {"type": "grammar"}}, "response_format"),
    ({"repetition_penalty": 1.1}, "repetition_penalty"),
])
def test_unsupported_parameter_refused_then_dropped(http, cohere_emu, extra, param):
    body = {"model": "command-r", "messages": USER, **extra}
    refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400, refused.json
    error = refused.json["error"]
    assert error["code"] == "unsupported_params" and error["param"] == param
    assert "cohere" in error["message"] and param in error["message"]
    assert not cohere_emu.calls
    dropped = http.post("/v1/chat/completions", json={**body, "drop_params": True})
    assert dropped.status_code == 200, dropped.json
    assert dropped.headers["x-switchboard-dropped-params"] == param
    assert dropped.json["choices"][0]["message"]["content"] == "Hello! You said: ping"
    assert param not in sent(cohere_emu)


def test_drop_params_from_config(make_proxy, write_config, cohere_emu):
    app = make_proxy(config=write_config("drop_params: true\n"))
    result = sdk_for(app).chat.completions.with_raw_response.create(
        model="command-r", messages=USER, logit_bias={"1": 1})
    assert result.headers["x-switchboard-dropped-params"] == "logit_bias"
    assert "logit_bias" not in sent(cohere_emu)
