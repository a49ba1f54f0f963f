"""Hugging Face streaming: TGI token events (serverless and /generate_stream) and the router's
OpenAI-style chat stream, through the proxy with the official SDK, plus translator unit
tests on recorded-shape event sequences and checks that the emulator's answers follow the
contract."""
from __future__ import annotations

import json

import openai
import pytest

from app.errors import UpstreamError
from app.providers import PROVIDERS
from app.providers.huggingface.chat import ChatStreamTranslator
from app.providers.huggingface.textgen import TextGenStreamTranslator
from tests.emulators.contracts import allow_null, needs_specs
from tests.emulators.huggingface import (CHAT_CHUNK, CHAT_OUTPUT, TEXT_EVENT, TEXT_INPUT, TGI,
                                         TGI_ERROR, TGI_EVENT, HuggingFaceEmulator, hf_error,
                                         loading, rate_limited)
from tests.huggingface_fixtures import CHAT_MODEL, CODE_MODEL, CODE_PATH
from tests.huggingface_fixtures import tgi_config  # noqa: F401  (a fixture)
from tests.provider_fixtures import (WEATHER, provider_fixtures, sdk_for, sse_frames,
                                     streamed_text)

hf_emu, hf_env, make_proxy, proxy, http, sdk = provider_fixtures(HuggingFaceEmulator, "hf")

USER = [{"role": "user", "content": "ping"}]
CODE = [{"role": "user", "content": "def fib(n):"}]
HF = PROVIDERS["huggingface"]


# -- through the proxy ---------------------------------------------------------------
@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_stream_text_equals_non_stream_text(sdk, hf_emu, model):
    chunks = list(sdk.chat.completions.create(model=model, messages=CODE, stream=True))
    plain = sdk.chat.completions.create(model=model, messages=CODE)
    assert streamed_text(chunks) == plain.choices[0].message.content == \
        "Hello! You said: def fib(n):"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_serverless_stream_request_shape(sdk, hf_emu):
    list(sdk.chat.completions.create(model=CODE_MODEL, messages=CODE, stream=True,
                                     temperature=0))
    call = hf_emu.calls[-1]
    assert call.path == CODE_PATH
    assert call.body == {"inputs": "def fib(n):", "stream": True, "parameters": {
        "do_sample": False, "return_full_text": False, "details": True}}


def test_tgi_stream_uses_generate_stream(make_proxy, hf_emu, tgi_config):
    sdk = sdk_for(make_proxy(config=tgi_config()))
    chunks = list(sdk.chat.completions.create(model="code", messages=CODE, stream=True,
                                              stream_options={"include_usage": True}))
    assert streamed_text(chunks) == "Hello! You said: def fib(n):"
    call = hf_emu.calls[-1]
    assert call.path == "/generate_stream"
    assert "stream" not in call.body
    assert chunks[-1].usage.prompt_tokens == 2 and chunks[-1].usage.completion_tokens == 6


@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_include_usage_gives_final_usage_chunk(sdk, hf_emu, model):
    chunks = list(sdk.chat.completions.create(model=model, messages=CODE, stream=True,
                                              stream_options={"include_usage": True}))
    plain = sdk.chat.completions.create(model=model, messages=CODE)
    assert chunks[-1].choices == []
    tokens = ("prompt_tokens", "completion_tokens", "total_tokens")
    assert [getattr(chunks[-1].usage, k) for k in tokens] == \
        [getattr(plain.usage, k) for k in tokens]
    assert chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_stream_stop_sequence_is_held_back_and_cut(sdk, hf_emu, model):
    chunks = list(sdk.chat.completions.create(model=model, messages=USER, stream=True,
                                              stop=["said"]))
    assert streamed_text(chunks) == "Hello! You "
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_stream_max_tokens_is_length(sdk, hf_emu, model):
    chunks = list(sdk.chat.completions.create(model=model, messages=USER, stream=True,
                                              max_tokens=2))
    assert streamed_text(chunks) == "Hello! You"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_tool_call_deltas(http, sdk, hf_emu):
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "get_weather now"}],
            "tools": [WEATHER], "stream": True}
    chunks = sse_frames(http.post("/v1/chat/completions", json=body))
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0]["id"].startswith("call_") and calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == "get_weather"
    assert all(set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
               for tc in calls[1:])
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"city": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    # the SDK assembles the same call
    stream = sdk.chat.completions.create(model=CHAT_MODEL, messages=body["messages"],
                                         tools=[WEATHER], stream=True)
    ids = [tc.id for c in stream for tc in c.choices[0].delta.tool_calls or () if tc.id]
    assert len(ids) == 1 and ids[0].startswith("call_")


@pytest.mark.parametrize("model, after", [(CODE_MODEL, 3), (CHAT_MODEL, 3)])
def test_mid_stream_error_event_ends_with_error_frame(http, hf_emu, model, after):
    hf_emu.fail_mid_stream(after_events=after)
    chunks = sse_frames(http.post("/v1/chat/completions", json={
        "model": model, "messages": CODE, "stream": True, "num_retries": 0}))
    assert "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks[:-1]) == "Hello! You said:"
    error = chunks[-1]["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "CUDA out of memory" in error["message"] and error["code"] == "generation"


def test_mid_stream_error_surfaces_in_the_sdk(sdk, hf_emu):
    hf_emu.fail_mid_stream(after_events=2, message="Model is overloaded",
                           error_type="overloaded")
    with pytest.raises(openai.APIError) as raised:
        list(sdk.chat.completions.create(model=CODE_MODEL, messages=CODE, stream=True,
                                         extra_body={"num_retries": 0}))
    assert "Model is overloaded" in str(raised.value)


def test_error_before_stream_is_plain_429_with_retry_after(http, hf_emu):
    hf_emu.fail_next(rate_limited(reset_seconds=5))
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": CODE,
                                                "stream": True, "num_retries": 0})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "5"


def test_model_loading_before_stream_is_waited_out(sdk, hf_emu):
    hf_emu.fail_next(loading(CODE_MODEL, estimated_time=0.25))
    chunks = list(sdk.chat.completions.create(model=CODE_MODEL, messages=CODE, stream=True,
                                              extra_body={"num_retries": 0}))
    assert streamed_text(chunks) == "Hello! You said: def fib(n):"
    assert len(hf_emu.calls) == 2


def test_model_loading_past_the_deadline_fails_at_once(http, hf_emu):
    hf_emu.fail_next(loading(CODE_MODEL, estimated_time=30.0))
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": CODE,
                                                "stream": True, "timeout": 2,
                                                "num_retries": 0})
    assert r.status_code == 502
    assert "currently loading" in r.json["error"]["message"]
    assert len(hf_emu.calls) == 1


# -- translator units on recorded-shape events ---------------------------------------
def token_event(index, text, special=False, details=None, generated_text=None) -> dict:
    return {"index": index, "token": {"id": 10 + index, "text": text, "logprob": -0.5,
                                      "special": special},
            "generated_text": generated_text, "details": details}


def feed(translator, events) -> list[dict]:
    out = []
    for event in events:
        if isinstance(event, dict) and "token" in event:
            assert TEXT_EVENT.errors(event) == [], event   # the recorded shape is the contract's
        out.extend(translator.on_event(None, event if isinstance(event, str)
                                       else json.dumps(event)))
    out.extend(translator.on_end())
    return out


def content(fragments) -> str:
    return "".join(c["delta"].get("content", "") for f in fragments for c in f["choices"])


def test_textgen_translator_tokens_special_eos_and_usage():
    events = [token_event(1, "Hello"), token_event(2, " world"),
              token_event(3, "</s>", special=True, generated_text="Hello world", details={
                  "finish_reason": "eos_token", "generated_tokens": 3, "input_length": 7,
                  "seed": None})]
    fragments = feed(TextGenStreamTranslator(HF, None), events)
    assert content(fragments) == "Hello world"
    assert fragments[-1]["choices"][0]["finish_reason"] == "stop"
    assert fragments[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3,
                                      "total_tokens": 10}
    assert all(f["choices"][0]["finish_reason"] is None for f in fragments[:-1])


def test_textgen_translator_stop_split_across_tokens():
    events = [token_event(1, "Hello"), token_event(2, " wo"), token_event(3, "rld and"),
              token_event(4, " E"), token_event(5, "ND", details={
                  "finish_reason": "stop_sequence", "generated_tokens": 5, "input_length": 2})]
    fragments = feed(TextGenStreamTranslator(HF, ["END"]), events)
    assert content(fragments) == "Hello world and "
    assert fragments[-1]["choices"][0]["finish_reason"] == "stop"
    # the "E" of " E" could start "END": it is held back until the next token, never sent
    assert [c["delta"].get("content") for f in fragments for c in f["choices"]][-3:] == \
        ["rld and", " ", None]


def test_textgen_translator_length_finish():
    fragments = feed(TextGenStreamTranslator(HF, ["zzz"]), [
        token_event(1, "one"), token_event(2, " z", details={
            "finish_reason": "length", "generated_tokens": 2, "input_length": 1})])
    assert content(fragments) == "one z"
    assert fragments[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("error_type", ["generation", "overloaded", "validation"])
def test_textgen_translator_error_event_raises(error_type):
    translator = TextGenStreamTranslator(HF, None)
    list(translator.on_event(None, json.dumps(token_event(1, "Hi"))))
    with pytest.raises(UpstreamError) as raised:
        list(translator.on_event(None, json.dumps({"error": "Request failed during generation",
                                                   "error_type": error_type})))
    assert raised.value.status == 502 and raised.value.code == error_type
    assert "Request failed during generation" in raised.value.message


def chat_chunk(delta, finish=None) -> dict:
    chunk = {"id": "", "object": "chat.completion.chunk", "created": 1, "model": "tgi",
             "system_fingerprint": "3.3.6", "choices": [
                 {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    assert CHAT_CHUNK.errors(chunk) == [], chunk
    return chunk


def test_chat_translator_trims_repeated_fields_and_maps_finish():
    call = {"index": 0, "id": "0", "type": "function"}
    events = [
        chat_chunk({"role": "assistant", "tool_calls": [
            {**call, "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
        chat_chunk({"role": "assistant", "tool_calls": [
            {**call, "function": {"name": None, "arguments": 'ty": "Paris"}'}}]}),
        chat_chunk({"role": "assistant", "content": "", "tool_call_id": None}, "eos_token"),
    ]
    fragments = feed(ChatStreamTranslator(HF, None), [*events, "[DONE]"])
    calls = [tc for f in fragments for c in f["choices"] for tc in c["delta"].get("tool_calls")
             or ()]
    assert calls[0] == {"index": 0, "id": "0", "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"ci'}}
    assert calls[1] == {"index": 0, "function": {"arguments": 'ty": "Paris"}'}}
    assert fragments[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                           "finish_reason": "stop"}
    assert all("role" not in c["delta"] for f in fragments for c in f["choices"])


def test_chat_translator_stop_sequence_kept_by_tgi_is_cut():
    events = [chat_chunk({"role": "assistant", "content": piece})
              for piece in ("Hello", " wor", "ld", " E")]
    events.append(chat_chunk({"role": "assistant", "content": "ND"}, "stop_sequence"))
    fragments = feed(ChatStreamTranslator(HF, "END"), events)
    assert content(fragments) == "Hello world "
    assert fragments[-1]["choices"][0]["finish_reason"] == "stop"


def test_chat_translator_error_event_raises():
    translator = ChatStreamTranslator(HF, None)
    with pytest.raises(UpstreamError) as raised:
        list(translator.on_event(None, json.dumps({"error": "Model is overloaded",
                                                   "error_type": "overloaded"})))
    assert raised.value.code == "overloaded" and "Model is overloaded" in raised.value.message


# -- the emulator is honest ------------------------------------------------------------
@needs_specs
def test_contract_checks_can_fail():
    assert TEXT_INPUT.errors({"inputs": "x", "parameters": {"temperature": 0}})
    assert TEXT_INPUT.errors({"inputs": "x", "parameters": {"stop": ["a"] * 5}})
    assert TEXT_INPUT.errors({"parameters": {}})
    assert TEXT_INPUT.errors({"inputs": "x", "parameters": {"seed": None, "top_p": None}}) == []
    assert CHAT_OUTPUT.errors({"id": "x", "created": 1, "model": "m", "system_fingerprint": "",
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                         "total_tokens": 2},
                               "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                   "role": "assistant", "content": "a", "tool_calls": []}}]})
    assert TGI.errors("/components/schemas/GenerateRequest", {"inputs": 1})


def test_allow_null_rewrites_nullable():
    assert allow_null({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert allow_null({"allOf": [{"$ref": "#/x"}], "nullable": True}) == {
        "anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/x"}]}]}


def test_emulator_stream_events_follow_tgi_and_task_contracts(hf_emu):
    """The emulator audits every answer; here its recorded stream is checked once more."""
    reply = hf_emu.text({"inputs": "ping", "stream": True,
                         "parameters": {"stop": ["said"], "details": True}},
                        "tgi", serverless=False)
    events = [json.loads(frame[len(b"data: "):]) for frame in reply.events]
    assert events[-1]["details"]["finish_reason"] == "stop_sequence"
    assert events[-1]["generated_text"] == "Hello! You said"
    for event in events:
        assert TEXT_EVENT.errors(event) == []
        # TGI's spec marks `details` nullable without a type (WIRE-FORMATS §2.3): nulls out
        assert TGI.errors(TGI_EVENT, {k: v for k, v in event.items() if v is not None}) == []


@needs_specs
@pytest.mark.parametrize("status, error_type", [
    (422, "validation"), (424, "generation"), (429, "overloaded"), (500, "incomplete_generation")])
def test_scripted_tgi_errors_follow_the_error_schema(status, error_type):
    body = hf_error(status, "some failure", error_type).body
    assert TGI.errors(TGI_ERROR, body) == []
    assert TGI.errors(TGI_ERROR, {"error": "no type"})
