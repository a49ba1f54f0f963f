"""`null` where OpenAI allows it means "not given" (the openai SDK sends null for every
argument passed as None), on the wire to every provider; the message shapes OpenAI accepts."""
from __future__ import annotations

import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.provider_fixtures import emulator_fixture, sdk_for, sent

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")

NULLABLE = ("temperature", "top_p", "n", "stream", "presence_penalty", "frequency_penalty",
            "max_tokens", "max_completion_tokens", "stop", "seed", "user", "response_format",
            "parallel_tool_calls", "logprobs", "top_logprobs", "stream_options",
            "reasoning_effort", "service_tier", "store", "modalities", "audio", "prediction",
            "verbosity")
USER = [{"role": "user", "content": "ping"}]


@pytest.fixture
def both_env(provider_env, anthropic_emu):
    return {**provider_env, **anthropic_emu.proxy_env()}


@pytest.mark.parametrize("model,emulator", [("gpt-4o-mini", "openai_emu"),
                                            ("claude-3-5-sonnet-20241022", "anthropic_emu")])
def test_sdk_none_for_every_param_is_not_given(request, make_client, both_env, model, emulator):
    emu = request.getfixturevalue(emulator)
    client = make_client(env=both_env)
    sdk = sdk_for(client.application)
    reply = sdk.chat.completions.create(model=model, messages=USER,
                                        **{name: None for name in NULLABLE})
    assert reply.choices[0].message.content
    upstream = sent(emu)
    assert not set(NULLABLE) & {k for k, v in upstream.items() if v is None}, upstream


def test_raw_nulls_through_http(client, openai_emu):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": USER, **{name: None for name in NULLABLE}})
    assert r.status_code == 200, r.json
    assert r.json["object"] == "chat.completion"   # stream: null is not a stream
    assert not any(name in sent(openai_emu) for name in NULLABLE if name != "stream")


@pytest.mark.parametrize("assistant", [
    {"role": "assistant", "content": None, "refusal": "I can't help with that."},
    {"role": "assistant", "refusal": "I can't help with that."},
    {"role": "assistant", "content": None, "audio": {"id": "audio_abc123"}},
    {"role": "assistant", "content": "Sure.", "function_call": None, "tool_calls": None},
], ids=["refusal", "refusal-no-content", "audio", "null-calls"])
def test_assistant_message_shapes_openai_accepts(client, openai_emu, assistant):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": [*USER, assistant, {"role": "user", "content": "ok"}]})
    assert r.status_code == 200, r.json
    forwarded = sent(openai_emu)["messages"][1]
    assert None not in (forwarded.get("function_call", 0), forwarded.get("tool_calls", 0))


def test_assistant_without_any_answer_is_still_400(client, openai_emu):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4o-mini", "messages": [*USER, {"role": "assistant", "content": None}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[1].content"
    assert not openai_emu.calls


def test_null_where_openai_refuses_it_is_400(client, openai_emu):
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER,
                                                  "tools": None})
    assert r.status_code == 400 and r.json["error"]["param"] == "tools"


def test_function_message_without_name_is_400_before_key_checks(make_client, openai_emu):
    keyless = make_client(env={"OPENAI_API_KEY": ""})
    r = keyless.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [
        *USER, {"role": "function", "content": "{\"temp\": 20}"}]})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == "messages[1].name"
    assert r.json["error"]["type"] == "invalid_request_error"
    assert not openai_emu.calls


def test_refusal_turn_reaches_anthropic_within_its_contract(make_client, both_env,
                                                           anthropic_emu):
    client = make_client(env=both_env)
    r = client.post("/v1/chat/completions", json={
        "model": "claude-3-5-sonnet-20241022", "messages": [
            *USER, {"role": "assistant", "content": None, "refusal": "I can't help."},
            {"role": "user", "content": "ok"}]})
    assert r.status_code == 200, r.json


# -- the embeddings and text completions faces -------------------------------------------
EMBEDDING_NULLABLE = ("encoding_format", "dimensions", "user")
TEXT_NULLABLE = ("suffix", "max_tokens", "temperature", "top_p", "n", "stop", "stream",
                 "stream_options", "echo", "logprobs", "seed", "user", "presence_penalty",
                 "frequency_penalty", "logit_bias", "best_of")


def test_sdk_none_for_every_embeddings_param_is_not_given(client, openai_emu):
    reply = sdk_for(client.application).embeddings.create(
        model="text-embedding-3-small", input="ping", **{n: None for n in EMBEDDING_NULLABLE})
    assert len(reply.data) == 1 and reply.data[0].embedding
    upstream = sent(openai_emu)
    assert upstream["input"] and not {k for k, v in upstream.items() if v is None}, upstream
    assert "dimensions" not in upstream


@pytest.mark.parametrize("model", ["gpt-3.5-turbo-instruct", "gpt-4o-mini"],
                         ids=["completion-model", "chat-model"])
def test_sdk_none_for_every_completions_param_is_not_given(client, openai_emu, model):
    reply = sdk_for(client.application).completions.create(
        model=model, prompt="say ping", **{n: None for n in TEXT_NULLABLE})
    assert reply.object == "text_completion" and reply.choices[0].text
    upstream = sent(openai_emu)
    assert not {k for k, v in upstream.items() if v is None}, upstream


def test_raw_nulls_on_embeddings_and_completions(client, openai_emu):
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "ping",
                                            "input_type": None, "metadata": None,
                                            **{n: None for n in EMBEDDING_NULLABLE}})
    assert r.status_code == 200, r.json
    assert isinstance(r.json["data"][0]["embedding"], list)   # encoding_format null: floats
    r = client.post("/v1/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": None,
                                             **{n: None for n in TEXT_NULLABLE}})
    assert r.status_code == 200, r.json
    assert r.json["object"] == "text_completion"            # stream: null is not a stream
    assert sent(openai_emu)["prompt"] == "<|endoftext|>"     # OpenAI's default for a null prompt


def test_null_input_is_still_400(client, openai_emu):
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": None})
    assert r.status_code == 400 and r.json["error"]["param"] == "input"
    assert not openai_emu.calls
