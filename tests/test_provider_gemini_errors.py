"""Gemini through the proxy: safety stops, Google's errors mapped (keys never echoed), api_base
forms, and the emulator's contract checks."""
from __future__ import annotations


import openai
import pytest

from tests.emulators.contracts import needs_specs
from tests.emulators.gemini import CONTRACT, REQUEST, RESPONSE, STATUS, GeminiEmulator
from tests.emulators.gemini_errors import bad_key, internal, no_key, overloaded, rate_limited
from tests.emulators.server import Fault
from tests.provider_fixtures import NO_RETRY, provider_fixtures, sdk_for

from tests.gemini_cases import (FLASH, USER)

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")


# -- safety, errors and the emulator ---------------------------------------------------
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
