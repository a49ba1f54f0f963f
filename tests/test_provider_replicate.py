"""Replicate predictions through the proxy: the conformance table, driven by the official
openai SDK against the Flask app, with the Replicate emulator checking every request
against Replicate's contract (create bodies, Prefer, each model's inputs, the prompt's chat
format) and its own answers against the prediction schema."""
from __future__ import annotations

import json

import openai
import pytest

from app.usage.tokens import count_messages, count_text
import urllib3

from app.providers import get_provider
from app.providers.base import Target, UpstreamResponse
from app.providers.prompt_templates import TEMPLATES
from app.providers.replicate.request import resolve
from app.registry import load_registry
from tests.emulators.replicate import (LLAMA2_VERSION, NO_STREAM_VERSION, PLAIN_VERSION,
                                       PREDICTION, TUNED_VERSION, ReplicateEmulator, problem,
                                       throttled)
from tests.emulators.server import Fault, Reply
from tests.provider_fixtures import NO_RETRY, WEATHER, provider_fixtures, sdk_for
from tests.emulators.contracts import needs_specs

replicate_emu, replicate_env, make_proxy, proxy, http, sdk = provider_fixtures(
    ReplicateEmulator, "replicate")

README_MODELS = [f"replicate/meta/llama-2-70b-chat:{LLAMA2_VERSION}",
                 f"replicate/llama-2-70b-chat:{LLAMA2_VERSION}"]
LLAMA3 = "replicate/meta/meta-llama-3-70b-instruct"
MIXTRAL = "replicate/mistralai/mixtral-8x7b-instruct-v0.1"
LLAMA2 = README_MODELS[0]
PLAIN = f"replicate/acme/plain-llm:{PLAIN_VERSION}"
USER = [{"role": "user", "content": "ping"}]


def created(emulator) -> dict:
    """The body of the last prediction create call."""
    return next(c for c in reversed(emulator.calls) if c.method == "POST").body


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


# -- the prediction lifecycle -------------------------------------------------------------
def test_prediction_finished_within_the_wait_is_one_call(sdk, replicate_emu):
    sdk.chat.completions.create(model=LLAMA3, messages=USER)
    assert [c.method for c in replicate_emu.calls] == ["POST"]


def test_polls_until_succeeded_and_ignores_partial_output(sdk, replicate_emu):
    replicate_emu.configure(polls=2)
    r = sdk.chat.completions.create(model=LLAMA2, messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
    calls = replicate_emu.calls
    assert [c.method for c in calls] == ["POST", "GET", "GET", "GET"]
    prediction = next(iter(replicate_emu.predictions.values()))
    assert {c.path for c in calls[1:]} == {f"/v1/predictions/{prediction.id}"}
    assert all(c.headers["authorization"] == f"Bearer {replicate_emu.api_key}"
               for c in calls[1:])


def test_poll_delays_back_off(sdk, replicate_emu):
    """0.25 s before the first poll, doubling: the poll number rides on the FollowUp request
    and comes back on the response (UpstreamResponse.request)."""
    replicate_emu.configure(polls=2)
    sdk.chat.completions.create(model=LLAMA3, messages=USER)
    times = next(iter(replicate_emu.predictions.values())).poll_times
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps


def test_backoff_schedule_from_the_request_attempt():
    provider = get_provider("replicate")
    target = Target("m", LLAMA3, "replicate", "meta/meta-llama-3-70b-instruct",
                    "https://api.replicate.com", "r8_x", "REPLICATE_API_TOKEN")
    running = {"id": "p1", "status": "processing",
               "urls": {"get": "https://api.replicate.com/v1/predictions/p1"}}
    request, delays = None, []
    for _ in range(6):
        follow = provider.parse_response(UpstreamResponse(200, {}, running, request),
                                         {"messages": USER}, target)
        request = follow.request
        delays.append(follow.delay)
        assert (request.method, request.url) == ("GET", running["urls"]["get"])
        assert request.headers == {"Authorization": "Bearer r8_x"}
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert request.attempt == 6


@pytest.mark.parametrize("polls", [0, 2])
def test_failed_prediction_is_502_with_replicates_error(sdk, replicate_emu, polls):
    replicate_emu.configure(polls=polls, ending="failed", error="CUDA out of memory")
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == 502
    assert "CUDA out of memory" in raised.value.body["message"]
    assert raised.value.body["code"] == "prediction_failed"
    assert set(raised.value.body) == {"message", "type", "param", "code"}


def test_canceled_prediction_is_502(sdk, replicate_emu):
    replicate_emu.configure(polls=1, ending="canceled")
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=LLAMA2, messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "prediction_canceled"
    assert "canceled" in raised.value.body["message"]


def test_unknown_status_cannot_be_read(sdk, replicate_emu):
    replicate_emu.fail_next(Fault(reply=Reply(201, {"id": "x", "status": "dreaming"})))
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == 502
    assert "dreaming" in raised.value.body["message"]


# -- Replicate's errors -----------------------------------------------------------------
def test_wrong_key_is_replicates_401_without_the_key(make_proxy, replicate_emu):
    client = sdk_for(make_proxy(env={"REPLICATE_API_TOKEN": "r8_wrongWRONGwrong0123456789"}))
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model=LLAMA3, messages=USER)
    assert "You did not pass a valid authentication token" in raised.value.body["message"]
    assert "r8_wrong" not in json.dumps(raised.value.body)


@pytest.mark.parametrize("header", [True, False])
def test_throttled_429_gives_retry_after(sdk, replicate_emu, header):
    replicate_emu.fail_next(Fault(reply=throttled(3, header=header)))
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, extra_body=NO_RETRY)
    assert raised.value.response.headers["retry-after"] == "3"
    assert "Request was throttled. Expected available in 3 seconds." in \
        raised.value.body["message"]


def test_throttled_once_is_retried(sdk, replicate_emu):
    replicate_emu.fail_next(Fault(reply=throttled(1)))
    r = sdk.chat.completions.create(model=LLAMA3, messages=USER)
    assert r.choices[0].message.content == "Hello! You said: ping"
    assert len(replicate_emu.calls) == 2


@pytest.mark.parametrize("model, status, code_sent", [
    ("replicate/nobody/nothing", 404, 404),
    (f"replicate/nobody/nothing:{'f' * 64}", 422, 400)])
def test_unknown_model_and_version_are_mapped(sdk, replicate_emu, model, status, code_sent):
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=model, messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == code_sent
    detail = ("The requested resource could not be found." if status == 404 else
              "The specified version does not exist")
    assert detail in raised.value.body["message"]
    assert f"HTTP {status}" in raised.value.body["message"]


def test_422_input_validation_detail_reaches_the_client(sdk, replicate_emu):
    replicate_emu.fail_next(Fault(reply=problem(
        422, "Input validation failed", "- input.temperature: Must be greater than or equal "
        "to 0.01", invalid_fields=[{"type": "greater_equal", "field": "input.temperature",
                                    "description": "Must be greater than or equal to 0.01"}])))
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.chat.completions.create(model=LLAMA2, messages=USER, temperature=0)
    assert "input.temperature: Must be greater than or equal to 0.01" in \
        raised.value.body["message"]


def test_server_error_is_502_with_replicates_message(sdk, replicate_emu):
    replicate_emu.fail_next(Fault(reply=problem(500, "Internal Server Error",
                                                "Something went wrong on our end.")))
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, extra_body=NO_RETRY)
    assert raised.value.status_code == 502
    assert "Something went wrong on our end." in raised.value.body["message"]
    assert replicate_emu.api_key not in json.dumps(raised.value.body)


def test_error_text_that_echoes_the_key_is_scrubbed(sdk, replicate_emu):
    replicate_emu.configure(ending="failed", error=f"bad token {replicate_emu.api_key}")
    with pytest.raises(openai.APIStatusError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, extra_body=NO_RETRY)
    assert replicate_emu.api_key not in json.dumps(raised.value.body)


# -- the emulator is honest ---------------------------------------------------------------
@needs_specs
def test_emulator_answers_follow_the_prediction_schema(replicate_emu):
    """Canaries: the emulator's own check catches a broken prediction, and accepts the
    real shapes (null error, official models' version "hidden", list or string output)."""
    good = {"id": "p", "model": "m/n", "version": "hidden", "input": {}, "output": ["a"],
            "data_removed": False, "error": None, "status": "succeeded",
            "created_at": "2026-01-01T00:00:00.000000Z",
            "urls": {"get": "https://a/p", "cancel": "https://a/c", "web": "https://w/p"}}
    assert PREDICTION.errors(good) == []
    assert PREDICTION.errors({**good, "output": "a", "version": LLAMA2_VERSION}) == []
    assert PREDICTION.errors({**good, "status": "dreaming"})
    assert PREDICTION.errors({k: v for k, v in good.items() if k != "urls"})


@pytest.mark.parametrize("headers, body, fragment", [
    pytest.param({}, {"input": {"prompt": "x"}}, "'version' is a required property",
                 marks=needs_specs),
    ({"Prefer": "wait=0"}, {"version": PLAIN_VERSION, "input": {"prompt": "User: x\nAssistant:"}},
     "does not match"),
    ({}, {"version": LLAMA2_VERSION, "input": {"prompt": "x", "max_tokens": 5}},
     "input.max_tokens: this model has no such input"),
    ({}, {"version": LLAMA2_VERSION, "input": {"prompt": "x", "max_new_tokens": "5"}},
     "Invalid type"),
    ({}, {"version": PLAIN_VERSION, "input": {"prompt": "hello"}}, "role label"),
])
def test_emulator_rejects_what_replicate_rejects(replicate_emu, headers, body, fragment):
    r = urllib3.request("POST", f"{replicate_emu.base_url}/v1/predictions", json=body,
                        headers={"Authorization": f"Bearer {replicate_emu.api_key}", **headers})
    assert r.status == 422
    assert fragment in json.dumps(replicate_emu.violations)
    replicate_emu.violations.clear()


def test_emulator_wraps_with_the_models_own_template(replicate_emu):
    """Mixtral's default prompt_template wraps the prompt again unless told "{prompt}"."""
    r = urllib3.request("POST", f"{replicate_emu.base_url}/v1/models/mistralai/"
                        "mixtral-8x7b-instruct-v0.1/predictions",
                        json={"input": {"prompt": "<s>[INST] hi [/INST]"}},
                        headers={"Authorization": f"Bearer {replicate_emu.api_key}"})
    assert r.status == 422
    assert "malformed" in json.dumps(replicate_emu.violations)
    replicate_emu.violations.clear()


def test_every_registry_entry_resolves():
    provider = get_provider("replicate")
    entries = [(n, i) for n, i in load_registry().items() if i["provider"] == "replicate"]
    assert len(entries) >= 7
    for name, info in entries:
        target = Target(name, name, "replicate", info.get("upstream_model", name),
                        "https://api.replicate.com", "r8_x", "REPLICATE_API_TOKEN", info=info)
        model = resolve(target)
        assert model.template in TEMPLATES
        assert provider.build_request({"messages": USER}, target).json["input"]["prompt"]


def test_streaming_model_without_stream_url_is_400(http, replicate_emu):
    r = http.post("/v1/chat/completions", json={
        "model": f"replicate/acme/batch-llm:{NO_STREAM_VERSION}", "messages": USER,
        "stream": True})
    assert r.status_code == 400
    assert r.json["error"]["code"] == "stream_unsupported"
    # The create call was made: only Replicate's answer says the model cannot stream.
    assert [c.method for c in replicate_emu.calls] == ["POST"]
