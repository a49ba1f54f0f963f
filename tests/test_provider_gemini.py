"""Gemini through the proxy with the official openai SDK as the client (non-streaming): routing,
conversation shape and parameters. The emulator checks every request against Gemini's contract
and the live API's extra rules, so each test also proves the wire body was acceptable."""
from __future__ import annotations


import openai
import pytest

from tests.emulators.gemini import GeminiEmulator
from tests.provider_fixtures import NO_RETRY, provider_fixtures, sdk_for, sent

from tests.gemini_cases import (FLASH, USER)

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")


# -- plain chat, conversation and parameters ----------------------------------------------
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
