"""Anthropic Messages API through the proxy: the conformance table, driven by the official
openai SDK against the Flask app (and once against gunicorn), with the Anthropic emulator
checking every request against Anthropic's contract."""
from __future__ import annotations

import json

import openai
import pytest
import urllib3

from tests.emulators.anthropic import (CONTRACT, ERROR, MESSAGE, AnthropicEmulator,
                                       anthropic_error, error_body)
from tests.emulators.server import Fault, Reply
from tests.provider_fixtures import (NO_RETRY, WEATHER, provider_fixtures, sdk_for, sent,
                                     sse_frames)
from tests.emulators.contracts import needs_specs

anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
    AnthropicEmulator, "anthropic")

USER = [{"role": "user", "content": "ping"}]
HISTORY = [{"role": "user", "content": "weather in Oslo?"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "call_h1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
           {"role": "tool", "tool_call_id": "call_h1", "content": "cold"}]


def scripted(content: list[dict], stop_reason: str = "end_turn", **usage) -> Reply:
    """A 200 Message body as the API sends it; checked against the contract first."""
    body = {"id": "msg_scripted01", "type": "message", "role": "assistant", "content": content,
            "model": "claude-3-5-sonnet-20241022", "stop_reason": stop_reason,
            "stop_sequence": None, "stop_details": None, "container": None,
            "usage": {"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": None,
                      "cache_read_input_tokens": None, "cache_creation": None,
                      "inference_geo": None, "server_tool_use": None, "service_tier": "standard",
                      **usage}}
    assert CONTRACT.errors(MESSAGE, body) == []
    return Reply(200, body)


# -- plain chat, routing, request shape ----------------------------------------------
def test_claude_2_plain_chat(sdk, anthropic_emu):
    r = sdk.chat.completions.with_raw_response.create(model="claude-2", messages=USER)
    completion = r.parse()
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("msg_emu")
    assert r.headers["x-switchboard-provider"] == "anthropic"
    call = anthropic_emu.calls[-1]
    assert call.path == "/v1/messages"
    assert call.headers["x-api-key"] == anthropic_emu.api_key
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert call.body == {"model": "claude-2", "max_tokens": 4096,
                         "messages": [{"role": "user",
                                       "content": [{"type": "text", "text": "ping"}]}]}


@pytest.mark.parametrize("model, upstream, max_tokens", [
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", 8192),   # registry limit
    ("anthropic/claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", 64000),
    ("claude-unlisted-9", "claude-unlisted-9", 4096),                      # name rule, default
])
def test_routing_and_default_max_tokens(sdk, anthropic_emu, model, upstream, max_tokens):
    sdk.chat.completions.create(model=model, messages=USER)
    assert sent(anthropic_emu)["model"] == upstream
    assert sent(anthropic_emu)["max_tokens"] == max_tokens


def test_client_limits_and_sampling_params(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER, max_tokens=300,
                                temperature=1.6, user="user-42")
    body = sent(anthropic_emu)
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1          # OpenAI's 0-2 clamped to Anthropic's 0-1
    assert body["metadata"] == {"user_id": "user-42"}
    sdk.chat.completions.create(model="claude-2", messages=USER, top_p=0.5)
    assert sent(anthropic_emu)["top_p"] == 0.5
    sdk.chat.completions.create(model="claude-2", messages=USER, max_completion_tokens=77,
                                max_tokens=999, temperature=0.3,
                                extra_body={"top_k": 5, "store": True, "reasoning": "x"})
    assert sent(anthropic_emu)["max_tokens"] == 77
    assert sent(anthropic_emu)["temperature"] == 0.3
    assert sent(anthropic_emu)["top_k"] == 5           # Anthropic's own; other extras not sent
    assert set(sent(anthropic_emu)) == {"model", "messages", "max_tokens", "temperature",
                                        "top_k"}


@pytest.mark.parametrize("sampling, sent_params, dropped", [
    ({"temperature": 0.7, "top_p": 1}, {"temperature": 0.7}, "top_p"),      # UIs send both
    ({"temperature": 0.7, "top_p": 0.9}, {"temperature": 0.7}, "top_p"),    # temperature wins
    ({"top_p": 1}, {}, "top_p"),                                            # asks for nothing
    ({"top_p": 0.9}, {"top_p": 0.9}, None),
])
def test_top_p_only_when_it_asks_for_something_and_temperature_is_absent(
        sdk, anthropic_emu, sampling, sent_params, dropped):
    r = sdk.chat.completions.with_raw_response.create(model="claude-sonnet-4-5",
                                                      messages=USER, **sampling)
    assert r.parse().choices[0].message.content == "Hello! You said: ping"
    assert r.headers.get("x-switchboard-dropped-params") == dropped
    body = sent(anthropic_emu)
    assert {k: body[k] for k in ("temperature", "top_p") if k in body} == sent_params


def test_api_base_with_v1_suffix(make_proxy, anthropic_emu):
    app = make_proxy(env={"ANTHROPIC_API_BASE": anthropic_emu.base_url + "/v1/"})
    assert sdk_for(app).chat.completions.create(model="claude-2", messages=USER).choices
    assert anthropic_emu.calls[-1].path == "/v1/messages"


# -- conversation shape ----------------------------------------------------------------
def test_system_messages_anywhere_are_merged_in_order(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "assistant", "content": "ok"},
        {"role": "system", "content": "No emojis."},
        {"role": "user", "content": "second"}])
    assert r.choices[0].message.content == "Hello! You said: second"
    body = sent(anthropic_emu)
    assert [b["text"] for b in body["system"]] == ["Be brief.", "Answer in English.", "No emojis."]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_multi_turn_same_role_merged_and_user_first(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=[
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},          # empty: left out
        {"role": "user", "content": "three"}])
    assert r.choices[0].message.content == "Hello! You said: one two three"
    assert sent(anthropic_emu)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "How can I help?"}]},
        {"role": "user", "content": [{"type": "text", "text": word}
                                     for word in ("one", "two", "three")]}]


def test_only_system_message_still_sends_a_user_turn(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=[{"role": "system", "content": "hi"}])
    assert sent(anthropic_emu)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "."}]}]


def test_final_assistant_prefill_loses_trailing_space(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER + [
        {"role": "assistant", "content": "Sure, "}])
    assert sent(anthropic_emu)["messages"][-1]["content"] == [{"type": "text", "text": "Sure,"}]


def test_images_data_and_http_urls(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=[{
        "role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg",
                                                "detail": "high"}},
            {"type": "image_url", "image_url": "data:image/jpg;base64,/9j/4AAQ"}]}])
    assert sent(anthropic_emu)["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "/9j/4AAQ"}}]


PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def test_file_parts_become_document_blocks(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=[{
        "role": "user", "content": [
            {"type": "text", "text": "summarise"},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}}]}])
    assert r.choices[0].message.content == "Hello! You said: summarise"
    assert sent(anthropic_emu)["messages"][0]["content"][1] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                       "data": "JVBERi0xLjQK"}}


@pytest.mark.parametrize("file", [{"file_id": "file-abc"}, {"file_data": "data:text/csv;base64,YQ=="}])
def test_unusable_file_part_is_a_400(http, anthropic_emu, file):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "file", "file": file}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[0].content[0].file"
    assert not anthropic_emu.calls


def test_images_inside_tool_results_become_image_blocks(sdk, anthropic_emu):
    messages = HISTORY[:2] + [{"role": "tool", "tool_call_id": "call_h1", "content": [
        {"type": "text", "text": "chart"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"file_data": PDF}}]}]
    r = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=[WEATHER])
    assert r.choices[0].message.content == "The tool returned: chart"
    assert sent(anthropic_emu)["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "chart"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVBERi0xLjQK"}}]


@pytest.mark.parametrize("url", ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes",
                                 "ftp://example.com/a.png"])
def test_unusable_image_is_a_400(http, anthropic_emu, url):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[0].content[0].image_url"
    assert not anthropic_emu.calls


def test_unsupported_content_part_is_a_400(http, anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]})
    assert r.status_code == 400
    assert "input_audio" in r.json["error"]["message"]
    assert not anthropic_emu.calls


# -- stop and length ---------------------------------------------------------------------
def test_stop_sequences(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=USER, stop="said")
    assert sent(anthropic_emu)["stop_sequences"] == ["said"]
    assert r.choices[0].message.content == "Hello! You "
    assert r.choices[0].finish_reason == "stop"


def test_whitespace_stop_sequences_are_applied_by_the_proxy(sdk, anthropic_emu):
    """The API refuses "\n" as a stop sequence: it is not sent, and the answer is cut there."""
    messages = [{"role": "user", "content": "line one\nline two"}]
    r = sdk.chat.completions.create(model="claude-2", messages=messages, stop=["\n", "zzz", ""])
    assert sent(anthropic_emu)["stop_sequences"] == ["zzz"]
    assert r.choices[0].message.content == "Hello! You said: line one"
    assert r.choices[0].finish_reason == "stop"
    r = sdk.chat.completions.create(model="claude-2", messages=messages, stop="\n\n")
    assert "stop_sequences" not in sent(anthropic_emu)
    assert r.choices[0].message.content == "Hello! You said: line one\nline two"


def test_local_stop_before_a_tool_call_ends_the_answer(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=scripted([
        {"type": "text", "text": "Let me look.\nCalling now.", "citations": None},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {},
         "caller": {"type": "direct"}}], "tool_use")))
    choice = sdk.chat.completions.create(model="claude-2", messages=USER, tools=[WEATHER],
                                         stop="\n").choices[0]
    assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (
        "Let me look.", None, "stop")


def test_max_tokens_reached_is_length(sdk):
    r = sdk.chat.completions.create(model="claude-2", messages=USER, max_tokens=2)
    assert r.choices[0].message.content == "Hello! You"
    assert r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
    ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_stop_reason_mapping(sdk, anthropic_emu, stop_reason, finish):
    anthropic_emu.fail_next(Fault(reply=scripted(
        [{"type": "text", "text": "x", "citations": None}], stop_reason)))
    assert sdk.chat.completions.create(model="claude-2", messages=USER).choices[
        0].finish_reason == finish


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
def test_through_gunicorn(start_gunicorn, anthropic_env):
    proxy_process = start_gunicorn(anthropic_env)
    client = openai.OpenAI(base_url=proxy_process.base_url + "/v1", api_key="x", max_retries=0)
    plain = client.chat.completions.create(model="claude-2", messages=USER)
    assert plain.choices[0].message.content == "Hello! You said: ping"
    streamed = client.chat.completions.create(model="claude-2", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        plain.choices[0].message.content


# -- reasoning ---------------------------------------------------------------------------------
THINKER = "claude-sonnet-4-5"


def test_reasoning_effort_becomes_thinking_and_comes_back_as_reasoning_content(http,
                                                                               anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "low"})
    assert r.status_code == 200, r.json
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = r.json["choices"][0]["message"]
    assert message["content"] == "Hello! You said: ping"
    assert message["reasoning_content"] == "The user wrote 1 words."
    [block] = message["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("EmuSig")
    # Anthropic's output count includes the thinking; its share is counted from the text
    assert 0 < r.json["usage"]["completion_tokens_details"]["reasoning_tokens"] < \
        r.json["usage"]["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_go_back_in_the_next_tool_turn(http, anthropic_emu, stream):
    """With thinking on, the API wants the tool loop's assistant turn to start with its signed
    thinking: the answer's thinking_blocks (assembled from the stream too) are sent back."""
    body = {"model": THINKER, "messages": [{"role": "user", "content": "use get_weather"}],
            "tools": [WEATHER], "reasoning_effort": "medium", "stream": stream}
    first = http.post("/v1/chat/completions", json=body)
    if stream:
        deltas = [f["choices"][0]["delta"] for f in sse_frames(first) if f["choices"]]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == \
            "The user wrote 2 words."
        blocks = [b for d in deltas for b in d.get("thinking_blocks") or ()]
        calls = [c for d in deltas for c in d.get("tool_calls") or ()]
        message = {"role": "assistant", "content": None, "thinking_blocks": blocks,
                   "tool_calls": [{"id": calls[0]["id"], "type": "function",
                                   "function": {"name": calls[0]["function"]["name"],
                                                "arguments": "".join(c["function"]["arguments"]
                                                                     for c in calls)}}]}
    else:
        message = first.json["choices"][0]["message"]
    assert message["thinking_blocks"][0]["signature"].startswith("EmuSig")
    body["messages"] += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"],
                                   "content": "sunny"}]
    body["stream"] = False
    second = http.post("/v1/chat/completions", json=body)
    assert second.status_code == 200, second.json
    assert second.json["choices"][0]["message"]["content"] == "The tool returned: sunny"
    assert sent(anthropic_emu)["messages"][1]["content"][0] == message["thinking_blocks"][0]


def test_thinking_refuses_sampling_changes_unless_dropped(sdk, anthropic_emu):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=THINKER, messages=USER, temperature=0.3,
                                    reasoning_effort="high")
    assert refused.value.body["param"] == "temperature"
    assert not anthropic_emu.calls
    r = sdk.chat.completions.with_raw_response.create(
        model=THINKER, messages=USER, temperature=0.3, reasoning_effort="high",
        extra_body={"drop_params": True})
    assert r.headers["x-switchboard-dropped-params"] == "temperature"
    assert "temperature" not in sent(anthropic_emu)
    assert sent(anthropic_emu)["thinking"]["budget_tokens"] == 4096


def test_thinking_budget_stays_below_max_tokens(http, anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "high", "max_tokens": 3000})
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 2999}
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "low", "max_tokens": 500})
    assert r.status_code == 400 and r.json["error"]["param"] == "max_tokens"


def test_explicit_thinking_object_and_adaptive_effort(http, anthropic_emu):
    http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                            "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "thinking": {"type": "adaptive"},
                                                "reasoning_effort": "high"})
    assert r.status_code == 200, r.json
    assert sent(anthropic_emu)["thinking"] == {"type": "adaptive"}
    assert sent(anthropic_emu)["output_config"] == {"effort": "high"}
