"""Anthropic through the proxy: usage, errors mapped and scrubbed, the emulator's honesty,
and one request end to end through gunicorn."""
from __future__ import annotations

import json

import openai
import pytest
import urllib3

from tests.emulators.anthropic import (CONTRACT, ERROR, AnthropicEmulator,
                                       anthropic_error, error_body)
from tests.emulators.server import Fault
from tests.provider_fixtures import (NO_RETRY, provider_fixtures, sdk_for, sent)
from tests.emulators.contracts import needs_specs

from tests.anthropic_cases import (USER, scripted)

anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
    AnthropicEmulator, "anthropic")


# -- usage ------------------------------------------------------------------------------------
def test_usage_counts_cache_reads_and_writes_in_prompt_tokens(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=scripted(
        [{"type": "text", "text": "hi", "citations": None}], input_tokens=10, output_tokens=5,
        cache_read_input_tokens=100, cache_creation_input_tokens=20)))
    usage = sdk.chat.completions.create(model="claude-2", messages=USER).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (130, 5, 135)
    assert usage.prompt_tokens_details.cached_tokens == 100
    extra = usage.model_extra
    assert (extra["cache_read_input_tokens"], extra["cache_creation_input_tokens"]) == (100, 20)


def test_prompt_cache_write_then_read(sdk, anthropic_emu):
    """cache_control on a system part reaches Anthropic; the second call reads the cache."""
    messages = [{"role": "system", "content": [{"type": "text", "text": "a long shared preamble",
                                                "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "hello"}]
    first = sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=messages)
    assert sent(anthropic_emu)["system"] == messages[0]["content"]
    second = sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=messages)
    assert first.usage.model_extra["cache_creation_input_tokens"] == 4
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == 4
    assert second.usage.model_extra["cache_creation_input_tokens"] == 0
    assert first.usage.prompt_tokens == second.usage.prompt_tokens == 4 + 1 + 2


# -- errors ---------------------------------------------------------------------------------
def test_wrong_key_is_anthropic_401_without_the_key(make_proxy, anthropic_emu):
    key = "sk-ant-wrong-key-abcdefghij"
    client = sdk_for(make_proxy(env={"ANTHROPIC_API_KEY": key}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="claude-2", messages=USER)
    assert raised.value.status_code == 401
    assert "invalid x-api-key" in raised.value.body["message"]
    assert key not in json.dumps(raised.value.body)
    assert anthropic_emu.calls[-1].headers["x-api-key"] == key


def test_missing_key_never_calls_anthropic(make_proxy, anthropic_emu):
    client = sdk_for(make_proxy(env={"ANTHROPIC_API_KEY": ""}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="claude-2", messages=USER)
    assert "ANTHROPIC_API_KEY" in raised.value.body["message"]
    assert not anthropic_emu.calls


def test_rate_limit_429_keeps_retry_after(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(
        429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate "
        "limit", {"retry-after": "17"})))
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model="claude-2", messages=USER, extra_body=NO_RETRY)
    assert raised.value.response.headers["retry-after"] == "17"
    assert "per-minute rate limit" in raised.value.body["message"]
    assert raised.value.body["code"] == "rate_limit_error"


@pytest.mark.parametrize("status, type_, message, expected", [
    (529, "overloaded_error", "Overloaded", 502),
    (500, "api_error", "Internal server error", 502),
    (400, "invalid_request_error", "messages.0: tool_use ids were found without results", 400),
    (404, "not_found_error", "model: claude-9", 404),
    (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", 413),
])
def test_anthropic_errors_mapped(sdk, anthropic_emu, status, type_, message, expected):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(status, type_, message)))
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model="claude-2", messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == expected
    error = raised.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"] and f"HTTP {status}" in error["message"]
    assert error["code"] == type_
    assert anthropic_emu.api_key not in json.dumps(error)


def test_overloaded_529_is_retried(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(529, "overloaded_error", "Overloaded")))
    r = sdk.chat.completions.create(model="claude-2", messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
    assert len(anthropic_emu.calls) == 2


def test_error_body_that_echoes_the_key_is_scrubbed(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(
        401, "authentication_error", f"key {anthropic_emu.api_key} revoked")))
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk.chat.completions.create(model="claude-2", messages=USER)
    assert anthropic_emu.api_key not in json.dumps(raised.value.body)


# -- the emulator is honest -------------------------------------------------------------------
@needs_specs
def test_emulator_error_bodies_follow_the_contract():
    for type_ in ("invalid_request_error", "authentication_error", "rate_limit_error",
                  "overloaded_error", "api_error"):
        assert CONTRACT.errors(ERROR, error_body(type_, "m")) == []
    assert CONTRACT.errors(ERROR, {"type": "error", "error": {"type": "nope"}}) != []


@pytest.mark.parametrize("headers, body, status, fragment", [
    ({}, {"model": "claude-2", "max_tokens": 5,
          "messages": [{"role": "user", "content": "hi"}]}, 401, "x-api-key"),
    ({"x-api-key": "K"}, {"model": "claude-2", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]}, 400,
     "anthropic-version"),
    pytest.param({"x-api-key": "K", "anthropic-version": "2023-06-01"},
                 {"model": "claude-2", "messages": [{"role": "user", "content": "hi"}]}, 400,
                 "max_tokens", marks=needs_specs),
    ({"x-api-key": "K", "anthropic-version": "2023-06-01"},
     {"model": "claude-2", "max_tokens": 5, "messages": [{"role": "system", "content": "s"},
                                                       {"role": "user", "content": "hi"}]},
     400, "role"),
    ({"x-api-key": "K", "anthropic-version": "2023-06-01"},
     {"model": "claude-2", "max_tokens": 5, "messages": [{"role": "assistant", "content": "a"},
                                                       {"role": "user", "content": "hi"}]},
     400, "first message"),
    ({"x-api-key": "K", "anthropic-version": "2023-06-01"},
     {"model": "claude-2", "max_tokens": 5, "messages": [
         {"role": "user", "content": "hi"},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                            "input": {}}]},
         {"role": "user", "content": "no result"}]}, 400, "without `tool_result`"),
    pytest.param({"x-api-key": "K", "anthropic-version": "2023-06-01"},
                 {"model": "claude-2", "max_tokens": 5, "temperature": 1.5,
                  "messages": [{"role": "user", "content": "hi"}]}, 400, "temperature",
                 marks=needs_specs),
])
def test_emulator_rejects_what_anthropic_rejects(anthropic_emu, headers, body, status, fragment):
    headers = {"content-type": "application/json",
               **{k: (anthropic_emu.api_key if v == "K" else v) for k, v in headers.items()}}
    r = urllib3.request("POST", anthropic_emu.base_url + "/v1/messages", json=body,
                        headers=headers, retries=False)
    assert r.status == status
    payload = r.json()
    assert CONTRACT.errors(ERROR, payload) == []
    assert fragment in payload["error"]["message"] or fragment in json.dumps(payload)
    anthropic_emu.violations.clear()   # these were sent on purpose


def test_emulator_merges_consecutive_turns(anthropic_emu):
    r = urllib3.request("POST", anthropic_emu.base_url + "/v1/messages", headers={
        "x-api-key": anthropic_emu.api_key, "anthropic-version": "2023-06-01"}, json={
        "model": "claude-2", "max_tokens": 50,
        "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        retries=False)
    assert r.status == 200
    assert r.json()["content"][0]["text"] == "Hello! You said: a b"


# -- end to end through gunicorn -------------------------------------------------------------
def test_through_gunicorn(shared_gunicorn, anthropic_emu):
    proxy_process = shared_gunicorn()
    client = openai.OpenAI(base_url=proxy_process.base_url + "/v1", api_key="x", max_retries=0)
    plain = client.chat.completions.create(model="claude-2", messages=USER)
    assert plain.choices[0].message.content == "Hello! You said: ping"
    streamed = client.chat.completions.create(model="claude-2", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        plain.choices[0].message.content
