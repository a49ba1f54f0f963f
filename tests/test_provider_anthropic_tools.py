"""Anthropic through the proxy: tools, tool choice, response_format and unsupported
parameters, with the emulator checking every request against Anthropic's contract."""
from __future__ import annotations

import json

import openai
import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.server import Fault
from tests.provider_fixtures import (WEATHER, provider_fixtures, sent)

from tests.anthropic_cases import (HISTORY, USER, scripted)

anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
    AnthropicEmulator, "anthropic")


# -- tools ---------------------------------------------------------------------------------
def test_two_step_tool_conversation_keeps_ids(sdk, anthropic_emu):
    messages = [{"role": "user", "content": "use get_weather please"}]
    first = sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=messages,
                                        tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("toolu_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert sent(anthropic_emu)["tools"] == [{
        "name": "get_weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "required": ["city"],
                         "properties": {"city": {"type": "string"}}}}]
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=messages,
                                         tools=[WEATHER])
    assert second.choices[0].message.content == "The tool returned: sunny"
    assert second.choices[0].finish_reason == "stop"
    wire = sent(anthropic_emu)["messages"]
    assert wire[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}]}
    assert wire[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id,
         "content": [{"type": "text", "text": "sunny"}]}]}


def test_parallel_results_then_user_text_in_one_turn(sdk, anthropic_emu):
    """Two calls answered by two tool messages and a user note: one user turn, results first."""
    messages = [
        {"role": "user", "content": "weather in two cities"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call:a1", "type": "function",      # ":" is outside Anthropic's id pattern
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_b2", "type": "function",
             "function": {"name": "get_weather", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call:a1", "content": "cold"},
        {"role": "tool", "tool_call_id": "call_b2", "content": [{"type": "text", "text": "warm"}]}]
    r = sdk.chat.completions.create(model="claude-2", messages=messages, tools=[WEATHER])
    assert r.choices[0].message.content == "The tool returned: warm"
    wire = sent(anthropic_emu)["messages"]
    assert wire[1]["content"][0] == {"type": "text", "text": "Checking."}
    assert wire[1]["content"][2]["input"] == {}
    assert wire[1]["content"][1]["id"] == "call_a1"
    assert [b["tool_use_id"] for b in wire[2]["content"]] == ["call_a1", "call_b2"]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_history_without_tools_declares_the_named_tools(sdk, anthropic_emu, stream):
    """OpenAI accepts tool_use / tool_result history with no `tools`; Anthropic refuses it,
    so the tools it names are declared (open schema) and not callable in this answer."""
    r = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=HISTORY, stream=stream)
    text = "".join(c.choices[0].delta.content or "" for c in r if c.choices) if stream \
        else r.choices[0].message.content
    assert text == "The tool returned: cold"
    body = sent(anthropic_emu)
    assert body["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "none"}
    assert body["messages"][1]["content"][0]["type"] == "tool_use"
    assert body["messages"][2]["content"][0]["type"] == "tool_result"


def test_tool_history_with_tools_sends_only_the_clients_tools(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-sonnet-4-5", messages=HISTORY, tools=[WEATHER])
    assert [t["name"] for t in sent(anthropic_emu)["tools"]] == ["get_weather"]
    assert "tool_choice" not in sent(anthropic_emu)
    assert "properties" in sent(anthropic_emu)["tools"][0]["input_schema"]


def test_legacy_functions_round_trip(sdk, anthropic_emu):
    functions = [WEATHER["function"]]
    first = sdk.chat.completions.create(model="claude-2", functions=functions,
                                        function_call={"name": "get_weather"},
                                        messages=[{"role": "user", "content": "hi"}])
    assert sent(anthropic_emu)["tool_choice"] == {"type": "tool", "name": "get_weather"}
    assert first.choices[0].finish_reason == "function_call"     # the legacy shape
    call = first.choices[0].message.function_call
    messages = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": None,
                 "function_call": {"name": call.name, "arguments": call.arguments}},
                {"role": "function", "name": "get_weather", "content": "rainy"}]
    second = sdk.chat.completions.create(model="claude-2", functions=functions, messages=messages)
    assert second.choices[0].message.content == "The tool returned: rainy"
    wire = sent(anthropic_emu)["messages"]
    assert wire[2]["content"][0]["tool_use_id"] == wire[1]["content"][0]["id"] == "call_fn_1"


@pytest.mark.parametrize("params, expected", [
    ({"tool_choice": "auto"}, {"type": "auto"}),
    ({"tool_choice": "required"}, {"type": "any"}),
    ({"tool_choice": "none"}, {"type": "none"}),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
     {"type": "tool", "name": "get_weather"}),
    ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
    ({"tool_choice": "required", "parallel_tool_calls": False},
     {"type": "any", "disable_parallel_tool_use": True}),
    ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
])
def test_tool_choice_mapping(sdk, anthropic_emu, params, expected):
    sdk.chat.completions.create(model="claude-2", messages=USER, tools=[WEATHER], **params)
    assert sent(anthropic_emu)["tool_choice"] == expected


def test_tool_choice_without_tools_is_not_sent(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER, tool_choice="none")
    assert "tool_choice" not in sent(anthropic_emu) and "tools" not in sent(anthropic_emu)


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", "null"])
def test_bad_tool_arguments_are_a_400_naming_the_message(http, anthropic_emu, arguments):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "r"}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[1].tool_calls[0].function.arguments"
    assert "messages[1].tool_calls[0]" in r.json["error"]["message"]
    assert not anthropic_emu.calls


@pytest.mark.parametrize("message", [
    {"role": "tool", "content": "r"},                              # no tool_call_id
    {"role": "function", "name": "f", "content": "r"},             # no function_call before
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": "f"}]},
])
def test_malformed_tool_messages_are_400s(http, anthropic_emu, message):
    r = http.post("/v1/chat/completions", json={"model": "claude-2",
                                                "messages": USER + [message]})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"].startswith("messages[1]")
    assert not anthropic_emu.calls


def test_response_with_text_and_several_tool_uses(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=scripted([
        {"type": "text", "text": "Let me check ", "citations": None},
        {"type": "text", "text": "both.", "citations": None},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"},
         "caller": {"type": "direct"}},
        {"type": "tool_use", "id": "toolu_02B", "name": "get_weather", "input": {},
         "caller": {"type": "direct"}}], "tool_use")))
    message = sdk.chat.completions.create(model="claude-2", messages=USER,
                                          tools=[WEATHER]).choices[0].message
    assert message.content == "Let me check both."
    assert [(c.id, c.function.name, json.loads(c.function.arguments))
            for c in message.tool_calls] == [("toolu_01A", "get_weather", {"city": "Oslo"}),
                                             ("toolu_02B", "get_weather", {})]


# -- response_format and unsupported params ---------------------------------------------
def test_json_schema_response_format_becomes_output_config(sdk, anthropic_emu):
    schema = {"type": "object", "properties": {"a": {"type": "string"}},
              "additionalProperties": False}
    sdk.chat.completions.create(model="claude-2", messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema}})
    assert sent(anthropic_emu)["output_config"] == {"format": {"type": "json_schema",
                                                               "schema": schema}}
    sdk.chat.completions.create(model="claude-2", messages=USER,
                                response_format={"type": "text"})
    assert "output_config" not in sent(anthropic_emu)


@pytest.mark.parametrize("param, value", [
    ("presence_penalty", 0.5), ("frequency_penalty", 1), ("seed", 7), ("n", 2),
    ("logit_bias", {"50256": -100}), ("logprobs", True),
    ("response_format", {"type": "json_object"}),
])
def test_unsupported_param_refused_then_dropped(sdk, anthropic_emu, param, value):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="claude-2", messages=USER, **{param: value})
    error = refused.value.body
    assert error["code"] == "unsupported_params"
    assert error["param"] == param
    assert "anthropic" in error["message"]
    assert not anthropic_emu.calls
    r = sdk.chat.completions.with_raw_response.create(model="claude-2", messages=USER,
                                                      extra_body={"drop_params": True},
                                                      **{param: value})
    assert r.headers["x-switchboard-dropped-params"] == param
    assert r.parse().choices[0].message.content == "Hello! You said: ping"
    wire = sent(anthropic_emu)
    assert param not in wire and "stop_sequences" not in wire and "drop_params" not in wire


def test_neutral_values_of_unsupported_params_pass(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER, n=1, presence_penalty=0,
                                logprobs=False)
    assert set(sent(anthropic_emu)) == {"model", "messages", "max_tokens"}
