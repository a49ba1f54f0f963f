"""Hugging Face through the proxy: chat models over the router, text-generation models over
the serverless route and a TGI server (names, messages, parameters, tools), driven by the
official openai SDK against the Flask app, with the emulator checking every request."""
from __future__ import annotations

import json

import pytest


from tests.emulators.huggingface import HuggingFaceEmulator
from tests.emulators.server import Fault, Reply
from tests.huggingface_fixtures import CHAT_MODEL, CODE_MODEL, CODE_PATH
from tests.huggingface_fixtures import tgi_config  # noqa: F401  (a fixture)
from tests.provider_fixtures import WEATHER, provider_fixtures, sdk_for, sent

from tests.huggingface_cases import (CODE, USER, params_sent)

hf_emu, hf_env, make_proxy, proxy, http, sdk = provider_fixtures(HuggingFaceEmulator, "hf")


# -- names, routing, keys ------------------------------------------------------------
def test_chat_model_goes_to_the_router(sdk, hf_emu):
    r = sdk.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=USER)
    completion = r.parse()
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert r.headers["x-switchboard-provider"] == "huggingface"
    call = hf_emu.calls[-1]
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {hf_emu.api_key}"
    assert call.body == {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "messages": USER}


@pytest.mark.parametrize("model", [CODE_MODEL, f"huggingface/{CODE_MODEL}"])
def test_text_generation_model_goes_to_the_serverless_route(sdk, hf_emu, model):
    completion = sdk.chat.completions.create(model=model, messages=CODE)
    assert completion.choices[0].message.content == "Hello! You said: def fib(n):"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == CODE_MODEL
    call = hf_emu.calls[-1]
    assert call.path == CODE_PATH
    assert call.headers["authorization"] == f"Bearer {hf_emu.api_key}"
    assert "x-use-cache" not in call.headers and "x-wait-for-model" not in call.headers
    assert call.body == {"inputs": "def fib(n):", "parameters": {
        "return_full_text": False, "details": True, "decoder_input_details": True}}
    # prompt tokens from the prefill (one per word here), completion tokens incl. </s>
    assert completion.usage.prompt_tokens == 2
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == 8


def test_bare_owner_repo_is_a_chat_model_by_default(sdk, hf_emu):
    completion = sdk.chat.completions.create(model="Qwen/Qwen2.5-7B-Instruct", messages=USER)
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert hf_emu.calls[-1].path == "/v1/chat/completions"
    assert sent(hf_emu)["model"] == "Qwen/Qwen2.5-7B-Instruct"


def test_task_chosen_per_deployment(make_proxy, hf_emu, write_config):
    config = write_config(f"""
model_list:
  - model_name: as-text
    params: {{model: huggingface/Qwen/Qwen2.5-7B, task: text-generation}}
  - model_name: as-chat
    params: {{model: huggingface/{CODE_MODEL}, task: chat}}
""")
    sdk = sdk_for(make_proxy(config=config))
    sdk.chat.completions.create(model="as-text", messages=USER)
    assert hf_emu.calls[-1].path == "/hf-inference/models/Qwen/Qwen2.5-7B"
    sdk.chat.completions.create(model="as-chat", messages=USER)
    assert hf_emu.calls[-1].path == "/v1/chat/completions"
    assert sent(hf_emu)["model"] == CODE_MODEL


def test_unknown_task_in_config_is_a_clear_server_error(make_proxy, hf_emu, write_config):
    config = write_config("""
model_list:
  - model_name: odd
    params: {model: huggingface/a/b, task: summarization}
""")
    r = make_proxy(config=config).test_client().post(
        "/v1/chat/completions", json={"model": "odd", "messages": USER})
    assert r.status_code == 500
    assert r.json["error"]["code"] == "invalid_deployment_config"
    assert "summarization" in r.json["error"]["message"]
    assert hf_emu.calls == []


def test_tgi_server_from_config_uses_generate(make_proxy, hf_emu, tgi_config):
    sdk = sdk_for(make_proxy(config=tgi_config()))
    completion = sdk.chat.completions.create(model="code", messages=CODE, max_tokens=3)
    assert completion.choices[0].message.content == "Hello! You said:"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.prompt_tokens == 2 and completion.usage.completion_tokens == 3
    call = hf_emu.calls[-1]
    assert call.path == "/generate"
    assert call.body == {"inputs": "def fib(n):", "parameters": {
        "max_new_tokens": 3, "return_full_text": False, "details": True,
        "decoder_input_details": True}}


def test_trailing_v1_on_a_base_is_ignored(make_proxy, hf_emu, tgi_config):
    sdk = sdk_for(make_proxy(config=tgi_config(api_base=f"{hf_emu.base_url}/v1/")))
    sdk.chat.completions.create(model="code", messages=CODE)
    assert hf_emu.calls[-1].path == "/generate"
    sdk = sdk_for(make_proxy(env={"HUGGINGFACE_API_BASE": f"{hf_emu.base_url}/v1"}))
    sdk.chat.completions.create(model=CHAT_MODEL, messages=USER)
    assert hf_emu.calls[-1].path == "/v1/chat/completions"


def test_hf_token_is_accepted_and_huggingface_api_key_wins(make_proxy, hf_emu):
    sdk = sdk_for(make_proxy(env={"HUGGINGFACE_API_KEY": "", "HF_TOKEN": hf_emu.api_key}))
    sdk.chat.completions.create(model=CHAT_MODEL, messages=USER)
    assert hf_emu.calls[-1].headers["authorization"] == f"Bearer {hf_emu.api_key}"
    sdk = sdk_for(make_proxy(env={"HF_TOKEN": "hf_someOtherToken000000"}))
    sdk.chat.completions.create(model=CHAT_MODEL, messages=USER)
    assert hf_emu.calls[-1].headers["authorization"] == f"Bearer {hf_emu.api_key}"


def test_missing_key_is_refused_without_a_call(make_proxy, hf_emu):
    r = make_proxy(env={"HUGGINGFACE_API_KEY": ""}).test_client().post(
        "/v1/chat/completions", json={"model": CHAT_MODEL, "messages": USER})
    assert r.status_code == 401
    assert r.json["error"]["code"] == "missing_api_key"
    assert "HUGGINGFACE_API_KEY" in r.json["error"]["message"]
    assert hf_emu.calls == []


# -- messages ------------------------------------------------------------------------
SYSTEMS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
           {"role": "assistant", "content": "Hello."},
           {"role": "developer", "content": "Answer in English."},
           {"role": "user", "content": "ping"}]


def test_chat_several_system_messages_and_turns_are_sent_in_place(sdk, hf_emu):
    completion = sdk.chat.completions.create(model=CHAT_MODEL, messages=SYSTEMS)
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert sent(hf_emu)["messages"] == [
        *SYSTEMS[:3], {"role": "system", "content": "Answer in English."}, SYSTEMS[4]]


def test_text_generation_prompt_is_the_conversation_text_in_order(sdk, hf_emu):
    sdk.chat.completions.create(model=CODE_MODEL, messages=SYSTEMS)
    assert sent(hf_emu)["inputs"] == "Be brief.\n\nhi\n\nHello.\n\nAnswer in English.\n\nping"


def test_text_generation_prompt_template_from_config(make_proxy, hf_emu, write_config):
    config = write_config(f"""
model_list:
  - model_name: llama
    params: {{model: huggingface/{CODE_MODEL}, prompt_template: llama3}}
""")
    sdk_for(make_proxy(config=config)).chat.completions.create(model="llama", messages=SYSTEMS)
    assert sent(hf_emu)["inputs"] == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Be brief.\n\nAnswer in English.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nping<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_text_generation_refuses_image_parts(http, hf_emu):
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this"},
                                     {"type": "image_url", "image_url": {"url": "http://x/y"}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "unsupported_content"
    assert hf_emu.calls == []


# -- parameters ----------------------------------------------------------------------
def test_chat_params_mapped_to_the_contract(sdk, hf_emu):
    sdk.chat.completions.create(
        model=CHAT_MODEL, messages=USER, temperature=0, top_p=1.0, stop="zzz", seed=0,
        max_completion_tokens=50, presence_penalty=0.5, frequency_penalty=-0.5, n=1,
        user="u-1", parallel_tool_calls=True, response_format={"type": "text"},
        extra_body={"top_k": 5})
    assert sent(hf_emu) == {
        "model": "meta-llama/Meta-Llama-3-8B-Instruct", "messages": USER, "temperature": 0,
        "top_p": 1.0, "stop": ["zzz"], "seed": 0, "max_tokens": 50, "presence_penalty": 0.5,
        "frequency_penalty": -0.5, "response_format": {"type": "text"}, "top_k": 5}


def test_text_generation_greedy_when_temperature_is_zero(sdk, hf_emu):
    sdk.chat.completions.create(model=CODE_MODEL, messages=CODE, temperature=0, top_p=0.5)
    assert params_sent(hf_emu)["do_sample"] is False
    assert "temperature" not in params_sent(hf_emu) and "top_p" not in params_sent(hf_emu)
    assert "x-use-cache" not in hf_emu.calls[-1].headers


def test_text_generation_sampling_params(sdk, hf_emu):
    sdk.chat.completions.create(
        model=CODE_MODEL, messages=CODE, temperature=0.7, top_p=1.0, stop=["\n\n", "zzz"],
        seed=42, max_completion_tokens=20, frequency_penalty=0.5,
        extra_body={"top_k": 10, "repetition_penalty": 1.1})
    assert params_sent(hf_emu) == {
        "temperature": 0.7, "do_sample": True, "stop": ["\n\n", "zzz"], "seed": 42,
        "max_new_tokens": 20, "frequency_penalty": 0.5, "top_k": 10,
        "repetition_penalty": 1.1, "return_full_text": False, "details": True,
        "decoder_input_details": True}
    # a sampled answer must not come from the serverless cache
    assert hf_emu.calls[-1].headers["x-use-cache"] == "false"
    sdk.chat.completions.create(model=CODE_MODEL, messages=CODE, top_p=0.9)
    assert params_sent(hf_emu)["top_p"] == 0.9 and params_sent(hf_emu)["do_sample"] is True


@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_stop_sequence_is_cut_and_finish_is_stop(sdk, hf_emu, model):
    """TGI keeps the stop sequence and says `stop_sequence`; OpenAI does neither."""
    completion = sdk.chat.completions.create(model=model, messages=USER, stop="said")
    assert completion.choices[0].message.content == "Hello! You "
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", [CHAT_MODEL, CODE_MODEL])
def test_max_tokens_reached_is_length(sdk, hf_emu, model):
    completion = sdk.chat.completions.create(model=model, messages=USER, max_tokens=2)
    assert completion.choices[0].message.content == "Hello! You"
    assert completion.choices[0].finish_reason == "length"


@pytest.mark.parametrize("model, param, value", [
    (CHAT_MODEL, "logit_bias", {"50256": -100}),
    (CHAT_MODEL, "n", 2),
    (CHAT_MODEL, "seed", -1),
    (CODE_MODEL, "tools", [WEATHER]),
    (CODE_MODEL, "presence_penalty", 0.5),
    (CODE_MODEL, "n", 3),
    (CODE_MODEL, "seed", 0),
    (CODE_MODEL, "logprobs", True),
])
def test_unsupported_param_refused_or_dropped(make_proxy, hf_emu, model, param, value):
    client = make_proxy().test_client()
    body = {"model": model, "messages": USER, param: value}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    assert r.json["error"]["code"] == "unsupported_params"
    assert r.json["error"]["param"] == param
    assert "huggingface" in r.json["error"]["message"]
    assert hf_emu.calls == []
    r = client.post("/v1/chat/completions", json={**body, "drop_params": True})
    assert r.status_code == 200, r.json
    assert r.headers["x-switchboard-dropped-params"] == param
    assert param not in sent(hf_emu) and param not in (sent(hf_emu).get("parameters") or {})


# -- tools (chat models) -------------------------------------------------------------
def test_two_step_tool_conversation_keeps_ids(sdk, hf_emu):
    model = "Qwen/Qwen2.5-72B-Instruct"
    messages = [{"role": "user", "content": "use get_weather for Paris"}]
    first = sdk.chat.completions.create(model=model, messages=messages, tools=[WEATHER],
                                        tool_choice="auto")
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert sent(hf_emu)["tools"] == [WEATHER] and sent(hf_emu)["tool_choice"] == "auto"
    messages += [message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = sdk.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "The tool returned: sunny"
    wire = sent(hf_emu)["messages"]
    assert wire[1] == {"role": "assistant", "tool_calls": [{
        "id": call.id, "type": "function",
        "function": {"name": "get_weather", "arguments": call.function.arguments}}]}
    assert wire[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


def test_assistant_text_with_tool_calls_becomes_two_turns(sdk, hf_emu):
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    sdk.chat.completions.create(model=CHAT_MODEL, tools=[WEATHER], messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}])
    assert sent(hf_emu)["messages"][1:3] == [
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "tool_calls": calls}]


def test_old_tgi_tool_arguments_object_becomes_a_string(sdk, hf_emu):
    hf_emu.fail_next(Fault(reply=Reply(200, {
        "id": "x", "object": "chat.completion", "created": 1, "model": "tgi",
        "system_fingerprint": "2.0.4", "usage": {"prompt_tokens": 3, "completion_tokens": 4,
                                                  "total_tokens": 7},
        "choices": [{"index": 0, "finish_reason": "eos_token", "logprobs": None, "message": {
            "role": "assistant", "tool_calls": [{"id": "0", "type": "function", "function": {
                "name": "get_weather", "arguments": {"city": "Paris"}}}]}}]})))
    completion = sdk.chat.completions.create(model=CHAT_MODEL, messages=USER, tools=[WEATHER])
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city":"Paris"}'
    assert completion.choices[0].finish_reason == "stop"
