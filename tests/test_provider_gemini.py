"""Gemini through the proxy with the official openai SDK as the client (non-streaming).

The emulator checks every request against Gemini's contract and the live API's extra
rules, so each test also proves the wire body was acceptable.
"""
from __future__ import annotations

import json

import openai
import pytest

from tests.emulators.contracts import needs_specs
from tests.emulators.gemini import (BAD_SIGNATURE, CONTRACT, REQUEST, RESPONSE, STATUS,
                                    GeminiEmulator, api_rules, bad_key, text_signature,
                                    internal, no_key, overloaded, rate_limited)
from tests.emulators.server import Fault
from tests.provider_fixtures import NO_RETRY, WEATHER, provider_fixtures, sdk_for, sent

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")

FLASH = "gemini/gemini-2.5-flash"
USER = [{"role": "user", "content": "hi"}]
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {}}}}


@pytest.mark.parametrize("model, upstream", [
    ("gemini/gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-2.5-pro", "gemini-2.5-pro"),
    ("gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-exp-1206", "gemini-exp-1206"),
    ("gemini/gemini-3-flash-preview", "gemini-3-flash-preview")])
def test_plain_chat(sdk, gemini_emu, model, upstream):
    r = sdk.chat.completions.with_raw_response.create(model=model, messages=USER)
    completion = r.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-emu-gemini-")
    assert completion.model == upstream
    choice = completion.choices[0]
    assert (choice.index, choice.message.role, choice.message.content, choice.finish_reason) == \
        (0, "assistant", "Hello! You said: hi", "stop")
    assert r.headers["x-switchboard-provider"] == "gemini"
    call = gemini_emu.calls[-1]
    assert call.path == f"/v1beta/models/{upstream}:generateContent"
    assert call.query == {}                    # never ?key=
    assert call.headers["x-goog-api-key"] == gemini_emu.api_key
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_usage_mapped(sdk, gemini_emu):
    gemini_emu.thinking_tokens, gemini_emu.cached_tokens = 7, 2
    usage = sdk.chat.completions.create(model=FLASH, messages=USER).usage
    # prompt: 1 word + 1 turn; answer: "Hello! You said: hi" = 4 words, plus 7 thinking tokens
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2, 11, 13)
    assert usage.completion_tokens_details.reasoning_tokens == 7
    assert usage.prompt_tokens_details.cached_tokens == 2


def test_system_messages_anywhere_go_to_system_instruction(sdk, gemini_emu):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "first"},
                {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "second"},
                {"role": "system", "content": "Answer in English."}]
    reply = sdk.chat.completions.create(model=FLASH, messages=messages)
    assert reply.choices[0].message.content == "Hello! You said: second"
    assert sent(gemini_emu) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."},
                                        {"text": "Answer in English."}]},
        "contents": [{"role": "user", "parts": [{"text": "first"}]},
                     {"role": "model", "parts": [{"text": "ok"}]},
                     {"role": "user", "parts": [{"text": "second"}]}]}


def test_system_messages_only_get_a_minimal_user_turn(sdk, gemini_emu):
    reply = sdk.chat.completions.create(model=FLASH, messages=[
        {"role": "system", "content": "Say hello."}])
    assert reply.choices[0].message.content == "Hello! You said: ."
    assert sent(gemini_emu) == {"systemInstruction": {"parts": [{"text": "Say hello."}]},
                                "contents": [{"role": "user", "parts": [{"text": "."}]}]}


def test_image_url_without_extension_is_file_data_without_mime_type(sdk, gemini_emu):
    sdk.chat.completions.create(model=FLASH, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/render?id=7"}}]}])
    assert sent(gemini_emu)["contents"][0]["parts"][1] == {
        "fileData": {"fileUri": "https://example.com/render?id=7"}}


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL",
                                    "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE",
                                    "MALFORMED_RESPONSE", "OTHER", "NO_IMAGE"])
def test_failure_finish_reasons_are_502s_that_retry_and_fall_back(make_proxy, write_config,
                                                                   gemini_emu, reason):
    sdk = sdk_for(make_proxy(config=write_config(
        "model_list:\n  - model_name: flaky\n    params: {model: gemini/gemini-2.5-flash}\n"
        "  - model_name: steady\n    params: {model: gemini/gemini-2.5-pro}\n")))
    gemini_emu.next_answer(f"finish:{reason}")
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    assert caught.value.status_code == 502
    assert reason in caught.value.message
    gemini_emu.next_answer(f"finish:{reason}")      # retried: the second call answers
    assert sdk.chat.completions.create(model=FLASH, messages=USER).choices[0].message.content \
        == "Hello! You said: hi"
    gemini_emu.next_answer(f"finish:{reason}")      # no retries left: the fallback answers
    r = sdk.chat.completions.with_raw_response.create(
        model="flaky", messages=USER, extra_body={"num_retries": 0, "fallbacks": ["steady"]})
    assert r.headers["x-switchboard-model"] == "gemini/gemini-2.5-pro"
    assert r.headers["x-switchboard-attempted-fallbacks"] == "1"


def test_multi_turn_same_roles_merged(sdk, gemini_emu):
    messages = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
                {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "three"},
                                             {"type": "text", "text": ""},
                                             {"type": "text", "text": "four"}]}]
    reply = sdk.chat.completions.create(model=FLASH, messages=messages)
    assert reply.choices[0].message.content == "Hello! You said: three four"
    assert sent(gemini_emu)["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "user", "parts": [{"text": "three"}, {"text": "four"}]}]


def test_stop(sdk, gemini_emu):
    reply = sdk.chat.completions.create(model=FLASH, messages=USER, stop="said")
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == \
        ("Hello! You ", "stop")
    assert sent(gemini_emu)["generationConfig"] == {"stopSequences": ["said"]}


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_reached_gives_length(sdk, gemini_emu, param):
    reply = sdk.chat.completions.create(model=FLASH, messages=USER, **{param: 2})
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == \
        ("Hello! You", "length")
    assert sent(gemini_emu)["generationConfig"] == {"maxOutputTokens": 2}


def test_generation_config_mapping_and_n(sdk, gemini_emu):
    reply = sdk.chat.completions.create(
        model=FLASH, messages=USER, temperature=0.3, top_p=0.9, n=2, seed=7,
        presence_penalty=0.5, frequency_penalty=-0.5, stop=["x", "y"], user="u-1",
        extra_body={"top_k": 40})
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content == "Hello! You said: hi" for c in reply.choices)
    assert sent(gemini_emu)["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "topK": 40, "candidateCount": 2, "seed": 7,
        "presencePenalty": 0.5, "frequencyPenalty": -0.5, "stopSequences": ["x", "y"]}


def test_null_params_are_left_out(http, gemini_emu):
    r = http.post("/v1/chat/completions", json={
        "model": FLASH, "messages": USER, "stop": None, "max_tokens": None, "seed": None})
    assert r.status_code == 200, r.json
    assert "generationConfig" not in sent(gemini_emu)


def test_response_format(sdk, gemini_emu):
    sdk.chat.completions.create(model=FLASH, messages=USER,
                                       response_format={"type": "json_object"})
    assert sent(gemini_emu)["generationConfig"] == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    sdk.chat.completions.create(model=FLASH, messages=USER, response_format={
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": True}})
    assert sent(gemini_emu)["generationConfig"] == {"responseMimeType": "application/json",
                                                    "responseJsonSchema": schema}
    sdk.chat.completions.create(model=FLASH, messages=USER,
                                       response_format={"type": "text"})
    assert "generationConfig" not in sent(gemini_emu)


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


def test_prompt_blocked_by_safety(sdk, gemini_emu):
    gemini_emu.next_answer("blocked")
    reply = sdk.chat.completions.create(model=FLASH, messages=USER, n=2)
    assert [(c.index, c.message.content, c.finish_reason) for c in reply.choices] == \
        [(0, None, "content_filter"), (1, None, "content_filter")]
    assert reply.usage.prompt_tokens == 2 and reply.usage.completion_tokens == 0


def test_answer_stopped_by_safety(sdk, gemini_emu):
    gemini_emu.next_answer("safety")
    reply = sdk.chat.completions.create(model=FLASH, messages=USER)
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == \
        (None, "content_filter")


def test_bad_key_is_401_without_the_key(make_proxy, gemini_emu):
    wrong = "AIzaSyWrongKeyWrongKeyWrongKey012345678"
    sdk = sdk_for(make_proxy({"GEMINI_API_KEY": wrong}))
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    error = caught.value.response.json()["error"]
    assert "API key not valid" in error["message"] and "gemini" in error["message"]
    assert error["code"] == "API_KEY_INVALID" and error["type"] == "authentication_error"
    assert wrong not in caught.value.response.text
    assert gemini_emu.calls[-1].headers["x-goog-api-key"] == wrong


def test_missing_key_is_refused_before_calling(make_proxy, gemini_emu):
    sdk = sdk_for(make_proxy({"GEMINI_API_KEY": ""}))
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER)
    assert "GEMINI_API_KEY" in caught.value.response.json()["error"]["message"]
    assert gemini_emu.calls == []


@pytest.mark.parametrize("reply, error_class, status, words, code", [
    (no_key(), openai.PermissionDeniedError, 403, "unregistered callers", "PERMISSION_DENIED"),
    (internal(), openai.APIStatusError, 502, "An internal error has occurred", "INTERNAL"),
    (overloaded(), openai.APIStatusError, 502, "The model is overloaded", "UNAVAILABLE"),
])
def test_google_errors_mapped(sdk, gemini_emu, reply, error_class, status, words, code):
    gemini_emu.fail_next(Fault(reply=reply))
    with pytest.raises(error_class) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    assert caught.value.status_code == status
    error = caught.value.response.json()["error"]
    assert words in error["message"] and error["code"] == code
    assert f"HTTP {reply.status}" in error["message"]


def test_model_not_found(sdk, gemini_emu):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gemini/palm-9", messages=USER,
                                           extra_body=NO_RETRY)
    error = caught.value.response.json()["error"]
    assert error["code"] == "NOT_FOUND" and "models/palm-9 is not found" in error["message"]
    assert gemini_emu.calls[-1].path == "/v1beta/models/palm-9:generateContent"


@pytest.mark.parametrize("delay, header", [("30s", "30"), ("1.6s", "2"), ("0.2s", "1")])
def test_rate_limit_retry_info_becomes_retry_after(sdk, gemini_emu, delay, header):
    gemini_emu.fail_next(Fault(reply=rate_limited(delay)))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    assert caught.value.response.headers["retry-after"] == header
    error = caught.value.response.json()["error"]
    assert "exceeded your current quota" in error["message"]
    assert error["code"] == "RESOURCE_EXHAUSTED" and error["type"] == "rate_limit_error"


def test_key_echoed_in_an_upstream_error_is_redacted(sdk, gemini_emu):
    reply = bad_key()
    reply.body["error"]["message"] = f"key {gemini_emu.api_key} is not valid"
    gemini_emu.fail_next(Fault(reply=reply))
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    assert gemini_emu.api_key not in caught.value.response.text
    assert "[redacted]" in caught.value.response.json()["error"]["message"]


def test_garbage_answer_is_502(sdk, gemini_emu):
    gemini_emu.fail_next(Fault(garbage=b'{"candidates": "no"}'))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, extra_body=NO_RETRY)
    assert caught.value.status_code == 502
    assert "cannot read" in caught.value.response.json()["error"]["message"]


@pytest.mark.parametrize("suffix", ["", "/", "/v1beta"])
def test_api_base_with_or_without_version(make_proxy, gemini_emu, suffix):
    sdk = sdk_for(make_proxy({"GEMINI_API_BASE": gemini_emu.base_url + suffix}))
    assert sdk.chat.completions.create(model=FLASH, messages=USER).choices[0].message.content
    assert gemini_emu.calls[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"


@needs_specs
def test_emulator_contract_checks_can_fail(gemini_emu):
    """The emulator is honest: its canned errors fit the contract, and the checks it applies
    to requests and to its own answers do reject wrong bodies."""
    for reply in (bad_key(), no_key(), rate_limited(), overloaded(), internal()):
        assert CONTRACT.errors(STATUS, reply.body["error"]) == []
    assert CONTRACT.errors(REQUEST, {"contents": [{"role": "user", "parts": [{"text": 1}]}]})
    assert CONTRACT.errors(REQUEST, {"generationConfig": {"temperature": "hot"}})
    assert CONTRACT.errors(RESPONSE, {"candidates": [{"finishReason": "DONE"}]})
    assert CONTRACT.errors(RESPONSE, {"usageMetadata": {"promptTokenCount": "3"}})
