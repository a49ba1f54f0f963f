"""Cohere (v2 chat) through the proxy: the official openai SDK in front, the Cohere emulator
behind, every request checked against Cohere's contract by the emulator."""
from __future__ import annotations

import json

import openai
import pytest

from app.errors import UpstreamError
from app.providers import get_provider
from app.providers.base import Target, UpstreamResponse
from tests.emulators.cohere import (CONTRACT, ERROR, EVENT, REQUEST, RESPONSE, TEMPLATE_TOKENS,
                                    CohereEmulator, cohere_error)
from tests.emulators.contracts import load_spec, needs_specs
from tests.emulators.server import Call, Fault, Reply
from tests.provider_fixtures import NO_RETRY, WEATHER, provider_fixtures, sdk_for, sent, sse_frames

cohere_emu, cohere_env, make_proxy, proxy, http, sdk = provider_fixtures(CohereEmulator, "cohere")

USER = [{"role": "user", "content": "ping"}]
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {}}}}


def prompt_tokens(*texts: str) -> int:
    """What the emulator's model counts (words + one per turn), plus Cohere's template."""
    return sum(len(t.split()) for t in texts) + len(texts) + TEMPLATE_TOKENS


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


# -- tools ---------------------------------------------------------------------------------
def test_two_step_tool_conversation_keeps_ids(sdk, cohere_emu):
    messages = [{"role": "user", "content": "use get_weather please"}]
    first = sdk.chat.completions.create(model="command-r-plus", messages=messages,
                                        tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I will call get_weather."    # Cohere's tool_plan
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert sent(cohere_emu)["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER[
            "function"]["parameters"], "description": "Weather in a city"}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {}}}}]
    assert "tool_choice" not in sent(cohere_emu)

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    second = sdk.chat.completions.create(model="command-r-plus", messages=messages,
                                         tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "The tool returned: sunny, 21 C"
    wire = sent(cohere_emu)["messages"]
    assert wire[1] == {"role": "assistant", "tool_plan": "I will call get_weather.", "tool_calls": [{
        "id": call.id, "type": "function",
        "function": {"name": "get_weather", "arguments": call.function.arguments}}]}
    assert wire[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}


def test_assistant_text_beside_tool_calls_is_the_tool_plan(sdk, cohere_emu):
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_1",
                 "content": [{"type": "text", "text": "rain"}]}]
    result = sdk.chat.completions.create(model="command-r", messages=messages, tools=[WEATHER])
    assert result.choices[0].message.content == "The tool returned: rain"
    assert sent(cohere_emu)["messages"][1:] == [
        {"role": "assistant", "tool_plan": "Let me look.", "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"}]


@pytest.mark.parametrize("tool_choice, wire_choice, tool_names, called", [
    ("required", "REQUIRED", ["get_weather", "get_time"], "get_weather"),
    ("none", "NONE", ["get_weather", "get_time"], None),
    ("auto", None, ["get_weather", "get_time"], None),
    ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"], "get_time"),
])
def test_tool_choice(sdk, cohere_emu, tool_choice, wire_choice, tool_names, called):
    result = sdk.chat.completions.create(model="command-r7b-12-2024", messages=USER,
                                         tools=[WEATHER, TIME], tool_choice=tool_choice)
    body = sent(cohere_emu)
    assert body.get("tool_choice") == wire_choice
    assert [t["function"]["name"] for t in body["tools"]] == tool_names
    calls = result.choices[0].message.tool_calls
    assert (calls[0].function.name if calls else None) == called


@pytest.mark.parametrize("extra, param", [
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
])
def test_tool_choice_that_cannot_be_met_is_a_400(http, cohere_emu, extra, param):
    r = http.post("/v1/chat/completions", json={"model": "command-r", "messages": USER, **extra})
    assert r.status_code == 400
    assert r.json["error"]["param"] == param
    assert not cohere_emu.calls


def test_strict_tools(sdk, cohere_emu):
    strict = {"type": "function", "function": {**WEATHER["function"], "strict": True}}
    sdk.chat.completions.create(model="command-r", messages=USER, tools=[strict])
    assert sent(cohere_emu)["strict_tools"] is True
    sdk.chat.completions.create(model="command-r", messages=USER, tools=[strict, TIME])
    assert "strict_tools" not in sent(cohere_emu)


def test_legacy_functions_round_trip(http, cohere_emu):
    functions = [WEATHER["function"]]
    first = http.post("/v1/chat/completions", json={
        "model": "command-r", "messages": [{"role": "user", "content": "hello"}],
        "functions": functions, "function_call": {"name": "get_weather"}})
    assert first.status_code == 200, first.json
    assert sent(cohere_emu)["tool_choice"] == "REQUIRED"
    assert sent(cohere_emu)["tools"][0]["function"]["name"] == "get_weather"
    choice = first.json["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert "tool_calls" not in choice["message"]
    function_call = choice["message"]["function_call"]
    assert function_call["name"] == "get_weather"
    assert json.loads(function_call["arguments"]) == {"city": "Paris"}
    messages = [{"role": "user", "content": "hello"},
                {"role": "assistant", "content": None, "function_call": function_call},
                {"role": "function", "name": "get_weather", "content": "cloudy"}]
    second = http.post("/v1/chat/completions", json={
        "model": "command-r", "messages": messages, "functions": functions,
        "function_call": "none"})
    assert second.status_code == 200, second.json
    assert second.json["choices"][0]["message"]["content"] == "The tool returned: cloudy"
    wire = sent(cohere_emu)
    assert wire["tool_choice"] == "NONE"
    paired = wire["messages"][1]["tool_calls"][0]["id"]
    assert wire["messages"][2] == {"role": "tool", "tool_call_id": paired, "content": "cloudy"}


def test_tool_message_without_id_is_a_400(http, cohere_emu):
    r = http.post("/v1/chat/completions", json={"model": "command-r", "messages": [
        {"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[1].tool_call_id"


def test_malformed_assistant_tool_call_is_a_400(http, cohere_emu):
    r = http.post("/v1/chat/completions", json={"model": "command-r", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": {"a": 1}}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[1].tool_calls[0]"


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
