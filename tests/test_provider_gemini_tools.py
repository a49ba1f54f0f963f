"""Gemini through the proxy: tools, tool results and thought signatures, with the emulator
checking every request against Gemini's contract."""
from __future__ import annotations

import json

import pytest

from tests.emulators.gemini import GeminiEmulator
from tests.emulators.gemini_rules import BAD_SIGNATURE, api_rules, text_signature
from tests.provider_fixtures import WEATHER, provider_fixtures, sent

from tests.gemini_cases import (CLOCK, FLASH, USER)

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")


# -- tools ---------------------------------------------------------------------------------
def test_two_step_tool_conversation(sdk, gemini_emu):
    messages = [{"role": "user", "content": "use get_weather please"}]
    first = sdk.chat.completions.create(model=FLASH, messages=messages,
                                               tools=[WEATHER, CLOCK])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and len(call.id) > 10
    assert (call.function.name, json.loads(call.function.arguments)) == \
        ("get_weather", {"city": "Paris"})
    signature = call.model_extra["extra_content"]["google"]["thought_signature"]
    assert sent(gemini_emu)["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather in a city",
         "parametersJsonSchema": WEATHER["function"]["parameters"]},
        {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {}}}]}]

    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = sdk.chat.completions.create(model=FLASH, messages=messages,
                                                tools=[WEATHER, CLOCK])
    assert second.choices[0].message.content == "The tool returned: sunny"
    assert second.choices[0].finish_reason == "stop"
    assert sent(gemini_emu)["contents"] == [
        {"role": "user", "parts": [{"text": "use get_weather please"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                      "args": {"city": "Paris"}},
                                     "thoughtSignature": signature}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                         "response": {"content": "sunny"}}}]}]


def test_text_signature_comes_back_on_the_message_and_goes_back_on_the_text(sdk, gemini_emu):
    """Gemini 3 signs an answer without function calls on its text part: the signature rides
    on the message's extra_content and the next turn sends it back on that text part."""
    messages = [{"role": "user", "content": "hi"}]
    message = sdk.chat.completions.create(model="gemini/gemini-3-flash-preview",
                                          messages=messages).choices[0].message
    signature = message.model_extra["extra_content"]["google"]["thought_signature"]
    assert signature and message.content == "Hello! You said: hi"
    messages += [message.model_dump(exclude_none=True), {"role": "user", "content": "more"}]
    sdk.chat.completions.create(model="gemini/gemini-3-flash-preview", messages=messages)
    assert sent(gemini_emu)["contents"][1] == {"role": "model", "parts": [
        {"text": "Hello! You said: hi", "thoughtSignature": signature}]}


def test_emulator_refuses_a_text_signature_moved_or_altered():
    signed = {"text": "Hello! You said: hi",
              "thoughtSignature": text_signature("Hello! You said: hi")}
    user = {"role": "user", "parts": [{"text": "more"}]}
    moved = {"role": "model", "parts": [signed, {"text": "and more"}]}
    altered = {"role": "model", "parts": [{**signed, "text": "Hello!"}]}
    for turn in (moved, altered):
        assert BAD_SIGNATURE in api_rules({"contents": [user, turn, user]}, "gemini-3-pro")
    assert api_rules({"contents": [user, {"role": "model", "parts": [signed]}, user]},
                     "gemini-3-pro") == []


def test_parallel_tool_results_and_json_results(sdk, gemini_emu):
    messages = [
        {"role": "user", "content": "weather and time"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time",
                                                               "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": '{"time": "12:00"}'},
        {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "[1, 2]"}]}]
    reply = sdk.chat.completions.create(model=FLASH, messages=messages,
                                               tools=[WEATHER, CLOCK])
    assert reply.choices[0].message.content == "The tool returned: {\"content\": [1, 2]}"
    assert sent(gemini_emu)["contents"][1:] == [
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}},
            {"functionResponse": {"name": "get_weather", "response": {"content": [1, 2]}}}]}]


@pytest.mark.parametrize("choice, config, called", [
    ("none", {"mode": "NONE"}, None),
    ("auto", {"mode": "AUTO"}, None),
    ("required", {"mode": "ANY"}, "get_weather"),
    ({"type": "function", "function": {"name": "get_time"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_time"]}, "get_time"),
])
def test_tool_choice(sdk, gemini_emu, choice, config, called):
    reply = sdk.chat.completions.create(model=FLASH, messages=USER,
                                               tools=[WEATHER, CLOCK], tool_choice=choice)
    assert sent(gemini_emu)["toolConfig"] == {"functionCallingConfig": config}
    calls = reply.choices[0].message.tool_calls
    assert (calls[0].function.name if calls else None) == called


def test_legacy_functions(http, gemini_emu):
    r = http.post("/v1/chat/completions", json={
        "model": FLASH, "messages": USER, "functions": [WEATHER["function"]],
        "function_call": {"name": "get_weather"}})
    assert r.status_code == 200, r.json
    assert r.json["choices"][0]["message"]["function_call"]["name"] == "get_weather"
    assert r.json["choices"][0]["finish_reason"] == "function_call"
    assert sent(gemini_emu)["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    history = USER + [{"role": "assistant", "content": None, "function_call": {
        "name": "get_weather", "arguments": '{"city": "Rome"}'}},
        {"role": "function", "name": "get_weather", "content": "rain"}]
    r = http.post("/v1/chat/completions", json={
        "model": FLASH, "messages": history, "functions": [WEATHER["function"]]})
    assert r.json["choices"][0]["message"]["content"] == "The tool returned: rain"
