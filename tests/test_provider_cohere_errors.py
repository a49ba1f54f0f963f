"""Cohere (v2 chat): errors mapped and scrubbed, answers read from canned bodies checked
against the contract, and the emulator's own honesty."""
from __future__ import annotations


import openai
import pytest

from app.errors import UpstreamError
from app.providers import get_provider
from app.providers.base import Target, UpstreamResponse
from tests.emulators.cohere import (CONTRACT, ERROR, EVENT, REQUEST, RESPONSE, CohereEmulator, cohere_error)
from tests.emulators.contracts import load_spec, needs_specs
from tests.emulators.server import Call, Fault, Reply
from tests.provider_fixtures import NO_RETRY, WEATHER, provider_fixtures, sdk_for, sent, sse_frames

from tests.cohere_cases import USER

cohere_emu, cohere_env, make_proxy, proxy, http, sdk = provider_fixtures(CohereEmulator, "cohere")


# -- errors --------------------------------------------------------------------------------
def _assert_no_key(error: openai.APIStatusError, key: str) -> None:
    assert key not in error.response.text


def test_wrong_key_gives_cohere_401(make_proxy, cohere_emu):
    app = make_proxy(env={"COHERE_API_KEY": "wrong-key-abcdefghijklmnop"})
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk_for(app).chat.completions.create(model="command-r", messages=USER)
    assert "invalid api token" in caught.value.message
    assert "cohere" in caught.value.message
    _assert_no_key(caught.value, "wrong-key-abcdefghijklmnop")


def test_missing_key_is_refused_without_a_call(make_proxy, cohere_emu):
    app = make_proxy(env={"COHERE_API_KEY": ""})
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk_for(app).chat.completions.create(model="command-r", messages=USER)
    assert "COHERE_API_KEY" in caught.value.message
    assert not cohere_emu.calls


@pytest.mark.parametrize("status, message, sdk_error, ours", [
    (400, "invalid request: message must not be empty", openai.BadRequestError, 400),
    (401, "invalid api token", openai.AuthenticationError, 401),
    (403, "You do not have access to this model", openai.PermissionDeniedError, 403),
    (404, "model 'command-x' not found", openai.NotFoundError, 404),
    (422, "too many tokens: total number of tokens exceeds the limit", openai.BadRequestError, 400),
    (498, "invalid api token", openai.AuthenticationError, 401),
    (499, "request cancelled", openai.InternalServerError, 502),
    (500, "internal server error, this has been reported to our developers",
     openai.InternalServerError, 502),
    (503, "service unavailable", openai.InternalServerError, 502),
    (504, "gateway timeout", openai.InternalServerError, 502),
])
def test_cohere_errors_are_mapped(sdk, cohere_emu, status, message, sdk_error, ours):
    reply = cohere_error(status, message)
    assert not CONTRACT.errors(ERROR, reply.body)
    cohere_emu.fail_next(Fault(reply=reply))
    with pytest.raises(sdk_error) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert caught.value.status_code == ours
    body = caught.value.body
    assert set(body) == {"message", "type", "param", "code"}
    assert message in body["message"] and f"HTTP {status}" in body["message"]
    _assert_no_key(caught.value, cohere_emu.api_key)


def test_rate_limit_retry_hint_becomes_retry_after(sdk, cohere_emu):
    message = "You are using a Trial key, which is limited to 20 API calls / minute."
    cohere_emu.fail_next(Fault(reply=cohere_error(429, message, {"Retry-After": "7"})))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert caught.value.response.headers["retry-after"] == "7"
    assert message in caught.value.message
    assert caught.value.body["type"] == "rate_limit_error"


def test_rate_limit_without_hint(sdk, cohere_emu):
    cohere_emu.fail_next(Fault(reply=cohere_error(429, "too many requests")))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert "retry-after" not in caught.value.response.headers


def test_unknown_model_404_comes_from_cohere(http, cohere_emu):
    r = http.post("/v1/chat/completions", json={"model": "cohere/c4ai-aya", "messages": USER})
    assert r.status_code == 404
    assert "model 'c4ai-aya' not found" in r.json["error"]["message"]


def test_non_json_error_body(sdk, cohere_emu):
    cohere_emu.fail_next(Fault(reply=Reply(502, b"<html>bad gateway</html>",
                                           content_type="text/html")))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert "bad gateway" in caught.value.message


def test_garbage_answer_is_a_502(sdk, cohere_emu):
    cohere_emu.fail_next(Fault(garbage=b'{"id": "x", "finish_reason": "COMPLETE"}'))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert caught.value.status_code == 502
    assert "cannot read" in caught.value.message


# -- reading answers (canned bodies, each checked against the contract first) ---------------
PROVIDER = get_provider("cohere")
TARGET = Target("command-r", "cohere/command-r", "cohere", "command-r", "https://api.cohere.com",
                "key", "COHERE_API_KEY")


def parse(answer: dict) -> dict:
    assert not CONTRACT.errors(RESPONSE, answer)
    return PROVIDER.parse_response(UpstreamResponse(200, {}, answer), {}, TARGET)


def test_usage_falls_back_to_billed_units():
    result = parse({"id": "r1", "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                    "usage": {"billed_units": {"input_tokens": 11, "output_tokens": 3},
                              "cached_tokens": 4}})
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14,
                               "prompt_tokens_details": {"cached_tokens": 4}}
    assert result["id"] == "chatcmpl-r1"


def test_no_usage_is_left_for_the_proxy_to_count_and_thinking_is_not_content():
    result = parse({"id": "r2", "finish_reason": "COMPLETE", "message": {
        "role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"},
                                         {"type": "text", "text": "Paris."}]}})
    assert result["choices"][0]["message"]["content"] == "Paris."
    assert result["usage"] == {"prompt_tokens": None, "completion_tokens": None,
                               "total_tokens": None}


@pytest.mark.parametrize("reason, finish", [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"),
                                            ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")])
def test_finish_reasons(reason, finish):
    result = parse({"id": "r", "finish_reason": reason, "message": {
        "role": "assistant", "content": [{"type": "text", "text": "x"}]}})
    assert result["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("reason, finish", [("ERROR_TOXIC", "content_filter"),
                                            ("ERROR_LIMIT", "length"), ("SOMETHING_NEW", "stop")])
def test_finish_reasons_outside_the_v2_enum(reason, finish):
    answer = {"id": "r", "finish_reason": reason,
              "message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]}}
    result = PROVIDER.parse_response(UpstreamResponse(200, {}, answer), {}, TARGET)
    assert result["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
def test_failed_generation_is_an_error(reason):
    with pytest.raises(UpstreamError) as caught:
        parse({"id": "r", "finish_reason": reason, "message": {"role": "assistant"}})
    assert caught.value.status == 502 and reason in caught.value.message


def test_failed_generation_through_the_proxy(sdk, cohere_emu):
    body = {"id": "r", "finish_reason": "ERROR", "message": {"role": "assistant", "content": []}}
    assert not CONTRACT.errors(RESPONSE, body)
    cohere_emu.fail_next(Fault(reply=Reply(200, body)))
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, extra_body=NO_RETRY)
    assert "finish_reason ERROR" in caught.value.message
    # Cohere answered 200: the error says what it reported, not a status it never sent.
    assert "HTTP" not in caught.value.message and "failed" in caught.value.message
    assert caught.value.body["type"] == "api_error"


# -- the emulator's own honesty ------------------------------------------------------------


@needs_specs
def test_contract_rejects_bad_requests():
    good = {"model": "command-r", "messages": USER}
    assert CONTRACT.errors(REQUEST, good) == []
    assert CONTRACT.errors(REQUEST, {**good, "response_format": {"type": "json_object"}}) == []
    for bad in ({"messages": USER},
                {**good, "messages": [{"role": "bogus", "content": "x"}]},
                {**good, "messages": [{"role": "tool", "content": "x"}]},
                {**good, "temperature": 1.5},
                {**good, "p": 1.0},
                {**good, "tool_choice": "required"},
                {**good, "response_format": {"type": "json_schema"}},
                {**good, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}):
        assert CONTRACT.errors(REQUEST, bad), bad


@needs_specs
def test_normalising_leaves_the_shared_spec_alone():
    CONTRACT.errors(REQUEST, {"model": "command-r", "messages": USER})
    schemas = load_spec("cohere/cohere-openapi.yaml")["components"]["schemas"]
    assert "oneOf" in schemas["ResponseFormatV2"]
    assert "token" in schemas["LogprobItem"]["required"]


@needs_specs
def test_emulator_answers_follow_the_contract(cohere_emu, sdk):
    """The emulator checks each answer it sends; a broken one would be a violation here."""
    sdk.chat.completions.create(model="command-r", messages=USER, logprobs=True)
    sdk.chat.completions.create(model="command-r", messages=[
        {"role": "user", "content": "get_weather"}], tools=[WEATHER])
    assert not cohere_emu.violations
    assert CONTRACT.errors(RESPONSE, {"id": "x", "finish_reason": "DONE",
                                      "message": {"role": "assistant"}})
    assert CONTRACT.errors(EVENT, {"type": "content-delta", "index": "zero"})
    assert CONTRACT.errors(ERROR, {"message": 5})


@needs_specs
def test_violations_are_reported(cohere_emu):
    """A body that breaks the contract is answered 400 and recorded (then cleared here)."""
    reply = cohere_emu.handle(Call("POST", "/v2/chat", {}, {
        "authorization": f"Bearer {cohere_emu.api_key}"}, {"model": "command-r",
                                                             "messages": [], "p": 2}, b""))
    assert reply.status == 400 and "invalid request" in reply.body["message"]
    assert cohere_emu.violations
    cohere_emu.violations.clear()


@pytest.mark.parametrize("stream", [False, True])
def test_reasoning_effort_becomes_thinking_and_comes_back(http, cohere_emu, stream):
    r = http.post("/v1/chat/completions", json={"model": "command-a-reasoning-08-2025",
                                                "messages": [{"role": "user", "content": "ping"}],
                                                "reasoning_effort": "medium", "stream": stream})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sent(cohere_emu)["thinking"] == {"type": "enabled", "token_budget": 8192}
    if stream:
        deltas = [f["choices"][0]["delta"] for f in sse_frames(r) if f["choices"]]
        reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
        content = "".join(d.get("content") or "" for d in deltas)
    else:
        message = r.json["choices"][0]["message"]
        reasoning, content = message["reasoning_content"], message["content"]
    assert reasoning == "Weighing the question first."
    assert content == "Hello! You said: ping"


def test_reasoning_effort_none_turns_thinking_off_and_explicit_thinking_wins(http, cohere_emu):
    http.post("/v1/chat/completions", json={"model": "command-r-plus", "messages": [
        {"role": "user", "content": "ping"}], "reasoning_effort": "none"})
    assert sent(cohere_emu)["thinking"] == {"type": "disabled"}
    http.post("/v1/chat/completions", json={"model": "command-r-plus", "messages": [
        {"role": "user", "content": "ping"}], "reasoning_effort": "high",
        "thinking": {"type": "enabled", "token_budget": 500}})
    assert sent(cohere_emu)["thinking"] == {"type": "enabled", "token_budget": 500}
