"""Replicate predictions through the proxy: names, routes, messages and parameters, driven by
the official openai SDK against the Flask app, with the Replicate emulator checking every
request against Replicate's contract (create bodies, Prefer, each model's inputs, the
prompt's chat format)."""
from __future__ import annotations


import openai
import pytest

from app.usage.tokens import count_messages, count_text

from tests.emulators.replicate import (LLAMA2_VERSION, PLAIN_VERSION,
                                       TUNED_VERSION, ReplicateEmulator)
from tests.provider_fixtures import WEATHER, provider_fixtures, sdk_for

from tests.replicate_cases import (LLAMA2, LLAMA3, MIXTRAL, PLAIN, README_MODELS, USER, created)

replicate_emu, replicate_env, make_proxy, proxy, http, sdk = provider_fixtures(
    ReplicateEmulator, "replicate")


# -- names, routes and the request shape -------------------------------------------------
@pytest.mark.parametrize("model", README_MODELS)
def test_readme_models_answer(sdk, replicate_emu, model):
    r = sdk.chat.completions.with_raw_response.create(model=model, messages=USER)
    completion = r.parse()
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert r.headers["x-switchboard-provider"] == "replicate"
    [call] = replicate_emu.calls
    assert (call.method, call.path) == ("POST", "/v1/predictions")
    assert call.headers["authorization"] == f"Bearer {replicate_emu.api_key}"
    assert call.headers["prefer"] == "wait"
    assert call.headers["content-type"] == "application/json"
    assert call.body == {"version": LLAMA2_VERSION,
                         "input": {"prompt": "<s>[INST] ping [/INST]", "system_prompt": ""}}


def test_official_model_route_without_version(sdk, replicate_emu):
    r = sdk.chat.completions.create(model=LLAMA3, messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
    call = replicate_emu.calls[0]
    assert call.path == "/v1/models/meta/meta-llama-3-70b-instruct/predictions"
    assert call.body == {"input": {
        "prompt": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nping<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "prompt_template": "{prompt}"}}


@pytest.mark.parametrize("model", [PLAIN, f"replicate/plain-llm:{PLAIN_VERSION}",
                                   f"replicate/acme/plain-llm:{PLAIN_VERSION.upper()}"])
def test_unregistered_version_names_use_the_plain_template(sdk, replicate_emu, model):
    r = sdk.chat.completions.create(model=model, messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
    assert created(replicate_emu) == {"version": PLAIN_VERSION, "input": {
        "prompt": "User: ping\nAssistant:", "prompt_template": "{prompt}"}}


def test_template_inferred_from_an_unregistered_name(sdk, replicate_emu):
    """A version of a llama-2 model the registry does not list: Llama-2 format in the prompt
    (system included, as nothing says the model takes system_prompt)."""
    r = sdk.chat.completions.create(
        model=f"replicate/someone/llama-2-13b-chat-tuned:{TUNED_VERSION}",
        messages=[{"role": "system", "content": "Be brief."}, *USER], max_tokens=9)
    assert r.choices[0].message.content == "Hello! You said: ping"
    assert created(replicate_emu)["input"] == {
        "prompt": "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nping [/INST]",
        "prompt_template": "{prompt}", "max_new_tokens": 9}


def test_api_base_with_v1_suffix(make_proxy, replicate_emu):
    client = sdk_for(make_proxy(env={"REPLICATE_API_BASE": replicate_emu.base_url + "/v1/"}))
    client.chat.completions.create(model=LLAMA3, messages=USER)
    assert replicate_emu.calls[0].path == "/v1/models/meta/meta-llama-3-70b-instruct/predictions"


def test_replicate_api_key_variable_is_accepted(make_proxy, replicate_emu):
    client = sdk_for(make_proxy(env={"REPLICATE_API_TOKEN": "",
                                     "REPLICATE_API_KEY": replicate_emu.api_key}))
    assert client.chat.completions.create(model=LLAMA3, messages=USER).choices[0].message.content


@pytest.mark.parametrize("model", ["replicate/llama-2-70b-chat", "replicate/meta/llama:latest",
                                   "replicate/meta/llama-2:" + "0" * 63, "replicate/../../admin",
                                   "replicate/meta/llama-2-70b-chat/predictions"])
def test_names_replicate_cannot_address_are_404(http, replicate_emu, model):
    r = http.post("/v1/chat/completions", json={"model": model, "messages": USER})
    assert r.status_code == 404, r.json
    assert r.json["error"]["code"] == "model_not_found"
    assert "replicate/<owner>/<name>" in r.json["error"]["message"]
    assert not replicate_emu.calls


def test_missing_key_never_calls_replicate(make_proxy, replicate_emu):
    client = sdk_for(make_proxy(env={"REPLICATE_API_TOKEN": ""}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model=LLAMA3, messages=USER)
    assert "REPLICATE_API_TOKEN" in raised.value.body["message"]
    assert not replicate_emu.calls


# -- messages ---------------------------------------------------------------------------
def test_several_system_messages_go_to_system_prompt_in_order(sdk, replicate_emu):
    messages = [{"role": "system", "content": "Be brief."}, *USER,
                {"role": "assistant", "content": "pong"},
                {"role": "developer", "content": "Answer in French."},
                {"role": "user", "content": "again"}]
    r = sdk.chat.completions.create(model=LLAMA2, messages=messages)
    assert r.choices[0].message.content == "Hello! You said: again"
    assert created(replicate_emu)["input"] == {
        "prompt": "<s>[INST] ping [/INST] pong </s><s>[INST] again [/INST]",
        "system_prompt": "Be brief.\n\nAnswer in French."}


def test_system_text_opens_the_mistral_prompt(sdk, replicate_emu):
    messages = [*USER, {"role": "system", "content": "Be brief."}]
    r = sdk.chat.completions.create(model=MIXTRAL, messages=messages)
    assert r.choices[0].message.content == "Hello! You said: Be brief.\n\nping"
    assert created(replicate_emu)["input"] == {"prompt": "<s>[INST] Be brief.\n\nping [/INST]",
                                               "prompt_template": "{prompt}"}


def test_multi_turn_llama3(sdk, replicate_emu):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}]
    r = sdk.chat.completions.create(model=LLAMA3, messages=messages)
    assert r.choices[0].message.content == "Hello! You said: bye"
    assert created(replicate_emu)["input"]["prompt"] == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nbye<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_multi_turn_plain_with_text_parts(sdk, replicate_emu):
    messages = [{"role": "user", "content": [{"type": "text", "text": "one "},
                                             {"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": "three"}]
    r = sdk.chat.completions.create(model=PLAIN, messages=messages)
    assert r.choices[0].message.content == "Hello! You said: three"
    assert created(replicate_emu)["input"]["prompt"] == \
        "User: one two\nAssistant: ok\nUser: three\nAssistant:"


def test_image_part_is_refused(http, replicate_emu):
    r = http.post("/v1/chat/completions", json={"model": LLAMA3, "messages": [{
        "role": "user", "content": [{"type": "text", "text": "what is this?"},
                                    {"type": "image_url",
                                     "image_url": {"url": "https://x/y.png"}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "unsupported_content"
    assert r.json["error"]["param"] == "messages[0].content"
    assert not replicate_emu.calls


def test_two_step_tool_conversation_with_tools_dropped(sdk, replicate_emu):
    """Replicate models have no tools: `tools` is refused (or dropped), and a conversation that
    used tools elsewhere is still rendered, the call ids intact, in order."""
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, tools=[WEATHER])
    assert raised.value.body["code"] == "unsupported_params"
    assert raised.value.body["param"] == "tools"
    assert "replicate" in raised.value.body["message"]
    assert not replicate_emu.calls
    messages = [{"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_abc123", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "sunny"}]
    r = sdk.chat.completions.with_raw_response.create(
        model=LLAMA3, messages=messages, tools=[WEATHER], tool_choice="auto",
        extra_body={"drop_params": True})
    assert r.headers["x-switchboard-dropped-params"] == "tool_choice,tools"
    assert r.parse().choices[0].message.content == \
        "Hello! You said: [tool result call_abc123: sunny]"
    prompt = created(replicate_emu)["input"]["prompt"]
    assert ("<|start_header_id|>assistant<|end_header_id|>\n\n"
            '[tool call call_abc123: get_weather({"city": "Paris"})]<|eot_id|>') in prompt
    assert set(created(replicate_emu)) == {"input"}


# -- parameters -------------------------------------------------------------------------
def test_llama2_sampling_params_and_limit(sdk, replicate_emu):
    sdk.chat.completions.create(model=LLAMA2, messages=USER, temperature=0.5, top_p=0.9,
                                seed=7, max_tokens=50, stop=["END", "\n\n"], user="u-1", n=1)
    assert created(replicate_emu)["input"] == {
        "prompt": "<s>[INST] ping [/INST]", "system_prompt": "", "max_new_tokens": 50,
        "seed": 7, "stop_sequences": "END,\n\n", "temperature": 0.5, "top_p": 0.9}


def test_llama3_params_use_its_input_names(sdk, replicate_emu):
    sdk.chat.completions.create(model=LLAMA3, messages=USER, temperature=0.2,
                                presence_penalty=0.5, frequency_penalty=-0.5,
                                max_completion_tokens=64, stop="zzz")
    assert created(replicate_emu)["input"] == {
        "prompt": created(replicate_emu)["input"]["prompt"], "prompt_template": "{prompt}",
        "max_tokens": 64, "temperature": 0.2, "presence_penalty": 0.5,
        "frequency_penalty": -0.5}


@pytest.mark.parametrize("model, param, value", [
    (LLAMA3, "seed", 7), (MIXTRAL, "seed", 7), (LLAMA2, "presence_penalty", 0.5),
    (LLAMA2, "frequency_penalty", 1.0), (LLAMA3, "logit_bias", {"1": 5}),
    (LLAMA3, "n", 2), (LLAMA3, "response_format", {"type": "json_object"}),
    (LLAMA2, "logprobs", True)])
def test_unsupported_param_refused_then_dropped(sdk, replicate_emu, model, param, value):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=model, messages=USER, extra_body={param: value})
    error = raised.value.body
    assert error["code"] == "unsupported_params" and error["param"] == param
    assert "replicate" in error["message"] and param in error["message"]
    assert not replicate_emu.calls
    r = sdk.chat.completions.with_raw_response.create(
        model=model, messages=USER, extra_body={param: value, "drop_params": True})
    assert r.headers["x-switchboard-dropped-params"] == param
    assert r.parse().choices[0].message.content == "Hello! You said: ping"
    assert param not in created(replicate_emu)["input"]


def test_neutral_values_of_unsupported_params_pass(sdk, replicate_emu):
    r = sdk.chat.completions.create(model=LLAMA2, messages=USER, n=1, presence_penalty=0,
                                    logprobs=False, logit_bias={})
    assert r.choices[0].message.content == "Hello! You said: ping"
    assert "presence_penalty" not in created(replicate_emu)["input"]


@pytest.mark.parametrize("model", [LLAMA2, LLAMA3, PLAIN])
def test_stop_cuts_the_answer_whether_or_not_the_model_takes_it(sdk, replicate_emu, model):
    r = sdk.chat.completions.create(model=model, messages=USER, stop=["said"])
    assert r.choices[0].message.content == "Hello! You "
    assert r.choices[0].finish_reason == "stop"


def test_stop_holding_a_comma_is_applied_by_the_proxy(sdk, replicate_emu):
    r = sdk.chat.completions.create(model=LLAMA2, messages=USER, stop=["You said:", "zz"])
    assert "stop_sequences" in created(replicate_emu)["input"]
    r = sdk.chat.completions.create(model=LLAMA2, messages=[
        {"role": "user", "content": "a, b"}], stop=["a, b"])
    assert "stop_sequences" not in created(replicate_emu)["input"]
    assert r.choices[0].message.content == "Hello! You said: "


@pytest.mark.parametrize("model", [LLAMA2, LLAMA3])
def test_max_tokens_reached_is_length(sdk, replicate_emu, model):
    r = sdk.chat.completions.create(model=model, messages=USER, max_tokens=2)
    assert r.choices[0].message.content == "Hello! You"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 2


def test_usage_from_metrics(sdk, replicate_emu):
    r = sdk.chat.completions.create(model=LLAMA2, messages=[
        {"role": "system", "content": "be very brief"}, *USER])
    # The emulator's counts: words of the prompt "<s>[INST] ping [/INST]" and the system text.
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3 + 3, 4)
    assert r.usage.total_tokens == 10


def test_usage_estimated_without_metrics(sdk, replicate_emu):
    replicate_emu.configure(metrics=False)
    r = sdk.chat.completions.create(model=PLAIN, messages=USER, max_tokens=6)
    # No metrics: the proxy counts with its tokenizer ("Hello! You said: ping" is 6 tokens).
    assert r.usage.prompt_tokens == count_messages(PLAIN, USER)
    assert r.usage.completion_tokens == count_text(PLAIN, "Hello! You said: ping") == 6
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason == "length"


def test_string_output_is_used_as_is(sdk, replicate_emu):
    replicate_emu.configure(string_output=True)
    r = sdk.chat.completions.create(model=LLAMA3, messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
