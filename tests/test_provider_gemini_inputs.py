"""Gemini through the proxy: images, audio and files, the inputs and parameters Gemini cannot
take (refused, or dropped under drop_params), and logprobs."""
from __future__ import annotations

import json

import openai
import pytest

from tests.emulators.gemini import GeminiEmulator
from tests.provider_fixtures import WEATHER, provider_fixtures, sent

from tests.gemini_cases import (CLOCK, FLASH, USER)

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")


# -- media, refused inputs, unsupported parameters, logprobs -------------------------------
def test_images_audio_and_files(sdk, gemini_emu):
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.JPG?size=2",
                                            "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                  "filename": "a.pdf"}}]
    reply = sdk.chat.completions.create(model=FLASH, messages=[
        {"role": "user", "content": content}])
    assert reply.choices[0].message.content == "Hello! You said: look"
    assert sent(gemini_emu)["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "https://example.com/a/cat.JPG?size=2",
                      "mimeType": "image/jpeg"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}]


@pytest.mark.parametrize("messages, param, words", [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "ftp://example.com/a.png"}}]}], "messages[0].content[0].image_url.url", "http"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png,abc"}}]}], "messages[0].content[0].image_url.url", "base64"),
    ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
     "messages[0].content[0].file", "file ids"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}],
     "messages[0].content[0].type", "'video'"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}],
     "messages[0].content[0].text", "string"),
    (USER + [{"role": "tool", "tool_call_id": "call_x", "content": "r"}],
     "messages[1].tool_call_id", "no tool call"),
    (USER + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}],
     "messages[1].tool_calls[0].function.arguments", "JSON object"),
    (USER + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}],
     "messages[1].tool_calls[0].function.arguments", "JSON object"),
    (USER + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": "f"}]}],
     "messages[1].tool_calls[0].function.name", "required"),
    ([{"role": "user", "content": ""}], "messages", "non-empty"),
    ([{"role": "function", "content": "x"}], "messages[0].name", "function name"),
])
def test_inputs_gemini_cannot_take_are_refused(http, gemini_emu, messages, param, words):
    r = http.post("/v1/chat/completions", json={"model": FLASH, "messages": messages})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == param
    assert words in r.json["error"]["message"]
    assert set(r.json["error"]) == {"message", "type", "param", "code"}
    assert gemini_emu.calls == []


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "web_search", "function": {"name": "x"}}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {"name": "x", "parameters": "no"}}]},
     "tools[0].function.parameters"),
    ({"tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"function_call": {"name": "nope"}}, "function_call"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
     "response_format.json_schema.schema"),
])
def test_bad_tool_and_format_params_are_refused(http, gemini_emu, extra, param):
    r = http.post("/v1/chat/completions", json={"model": FLASH, "messages": USER, **extra})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == param
    assert gemini_emu.calls == []


@pytest.mark.parametrize("extra, name", [
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"parallel_tool_calls": False, "tools": [WEATHER]}, "parallel_tool_calls"),
])
def test_unsupported_param_with_and_without_drop_params(sdk, gemini_emu, extra, name):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, **extra)
    error = caught.value.response.json()["error"]
    assert error["code"] == "unsupported_params" and error["param"] == name
    assert "gemini" in error["message"] and name in error["message"]
    assert gemini_emu.calls == []
    r = sdk.chat.completions.with_raw_response.create(
        model=FLASH, messages=USER, extra_body={"drop_params": True}, **extra)
    assert r.headers["x-switchboard-dropped-params"] == name
    assert r.parse().choices[0].message.content == "Hello! You said: hi"
    assert name not in json.dumps(sent(gemini_emu))


def test_neutral_values_of_unsupported_params_pass(sdk, gemini_emu):
    reply = sdk.chat.completions.create(model=FLASH, messages=USER, logit_bias={},
                                               parallel_tool_calls=True, tools=[CLOCK])
    assert reply.choices[0].message.content == "Hello! You said: hi"


def test_logprobs(sdk, gemini_emu):
    reply = sdk.chat.completions.create(model=FLASH, messages=USER, logprobs=True,
                                               top_logprobs=2)
    assert sent(gemini_emu)["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    assert tokens[1].token == " You" and tokens[1].logprob == -0.25
    assert tokens[1].bytes == list(b" You")
    assert [t.token for t in tokens[1].top_logprobs] == [" You", "alt1"]
