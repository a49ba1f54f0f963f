"""Replicate through the proxy: the prediction lifecycle, Replicate's errors, and the
emulator's answers held to the prediction schema."""
from __future__ import annotations

import json

import openai
import pytest

import urllib3

from app.providers import get_provider
from app.providers.base import Target, UpstreamResponse
from app.providers.prompt_templates import TEMPLATES
from app.providers.replicate.request import resolve
from app.registry import load_registry
from tests.emulators.replicate import (LLAMA2_VERSION, NO_STREAM_VERSION, PLAIN_VERSION,
                                       PREDICTION, ReplicateEmulator, problem,
                                       throttled)
from tests.emulators.server import Fault, Reply
from tests.provider_fixtures import NO_RETRY, provider_fixtures, sdk_for
from tests.emulators.contracts import needs_specs

from tests.replicate_cases import (LLAMA2, LLAMA3, USER)

replicate_emu, replicate_env, make_proxy, proxy, http, sdk = provider_fixtures(
    ReplicateEmulator, "replicate")


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
