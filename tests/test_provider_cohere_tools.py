"""Cohere (v2 chat) through the proxy: tools and tool results, checked against Cohere's
contract by the emulator."""
from __future__ import annotations

import json

import pytest

from tests.emulators.cohere import CohereEmulator
from tests.provider_fixtures import WEATHER, provider_fixtures, sent

from tests.cohere_cases import (TIME, USER)

cohere_emu, cohere_env, make_proxy, proxy, http, sdk = provider_fixtures(CohereEmulator, "cohere")


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
