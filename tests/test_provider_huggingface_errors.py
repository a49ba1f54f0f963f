"""Hugging Face through the proxy: errors (loading, rate limits, keys) and usage."""
from __future__ import annotations

import time

import openai
import pytest

from app.usage.tokens import count_messages, count_text

from tests.emulators.huggingface import HuggingFaceEmulator, hf_error, loading, rate_limited
from tests.emulators.server import Fault, Reply
from tests.huggingface_fixtures import CHAT_MODEL, CODE_MODEL, CODE_PATH
from tests.huggingface_fixtures import tgi_config  # noqa: F401  (a fixture)
from tests.provider_fixtures import NO_RETRY, provider_fixtures

from tests.huggingface_cases import (CODE, USER)

hf_emu, hf_env, make_proxy, proxy, http, sdk = provider_fixtures(HuggingFaceEmulator, "hf")


# -- errors --------------------------------------------------------------------------
def test_wrong_key_is_hf_401_without_the_key(make_proxy, hf_emu):
    wrong = "hf_wrongWrongWrong0123456789"
    r = make_proxy(env={"HUGGINGFACE_API_KEY": wrong}).test_client().post(
        "/v1/chat/completions", json={"model": CODE_MODEL, "messages": USER, **NO_RETRY})
    assert r.status_code == 401
    assert r.json["error"]["type"] == "authentication_error"
    assert "Invalid credentials in Authorization header" in r.json["error"]["message"]
    assert wrong not in r.get_data(as_text=True)


def test_rate_limit_gives_retry_after_from_hf_ratelimit_header(http, hf_emu):
    hf_emu.fail_next(rate_limited(reset_seconds=7))
    r = http.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": USER,
                                                **NO_RETRY})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.json["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in r.json["error"]["message"]


def test_rate_limit_error_through_the_sdk(sdk, hf_emu):
    hf_emu.fail_next(rate_limited())
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=CODE_MODEL, messages=USER, extra_body=NO_RETRY)
    assert raised.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize("status, body, ours, code, text", [
    (422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
                    "4096. Given: 4000 `inputs` tokens and 1024 `max_new_tokens`",
           "error_type": "validation"}, 400, "context_length_exceeded", "must be <= 4096"),
    (424, {"error": "Request failed during generation: Server error: CUDA out of memory",
           "error_type": "generation"}, 502, "generation", "CUDA out of memory"),
    (429, {"error": "Model is overloaded", "error_type": "overloaded"}, 429, "overloaded",
     "Model is overloaded"),
    (500, {"error": "Incomplete generation", "error_type": "incomplete_generation"}, 502,
     "incomplete_generation", "Incomplete generation"),
    (400, {"error": ["Error in `parameters.max_new_tokens`: ensure this value is less than "
                     "or equal to 250", "Error in `inputs`: field required"]}, 400, None,
     "less than or equal to 250; Error in `inputs`"),
])
def test_hf_and_tgi_error_bodies_are_mapped(http, hf_emu, status, body, ours, code, text):
    hf_emu.fail_next(Fault(reply=Reply(status, body)))
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": USER,
                                                **NO_RETRY})
    assert r.status_code == ours
    error = r.json["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert text in error["message"] and "huggingface returned HTTP" in error["message"]


def test_key_echoed_in_an_error_is_redacted(http, hf_emu):
    hf_emu.fail_next(Fault(reply=hf_error(500, f"bad token {hf_emu.api_key} used",
                                          "incomplete_generation")))
    r = http.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": USER,
                                                **NO_RETRY})
    assert r.status_code == 502
    assert hf_emu.api_key not in r.get_data(as_text=True)
    assert "[redacted]" in r.json["error"]["message"]


def test_model_loading_503_is_waited_out(sdk, hf_emu):
    hf_emu.fail_next(loading(CODE_MODEL, estimated_time=0.3, times=2))
    started = time.monotonic()
    completion = sdk.chat.completions.create(model=CODE_MODEL, messages=CODE,
                                             extra_body=NO_RETRY)
    assert completion.choices[0].message.content == "Hello! You said: def fib(n):"
    assert time.monotonic() - started >= 0.55
    assert [c.path for c in hf_emu.calls] == [CODE_PATH] * 3
    assert hf_emu.calls[0].body == hf_emu.calls[2].body


def test_model_loading_longer_than_the_timeout_gives_504(http, hf_emu):
    hf_emu.fail_next(loading(CODE_MODEL, estimated_time=20.0, times=5))
    started = time.monotonic()
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": CODE,
                                                "timeout": 1, **NO_RETRY})
    assert r.status_code == 504
    assert r.json["error"]["type"] == "timeout_error"
    assert time.monotonic() - started < 3


def test_503_without_estimate_is_an_upstream_error(http, hf_emu):
    hf_emu.fail_next(Fault(reply=hf_error(503, "Service Unavailable")))
    r = http.post("/v1/chat/completions", json={"model": CHAT_MODEL, "messages": USER,
                                                **NO_RETRY})
    assert r.status_code == 502
    assert "Service Unavailable" in r.json["error"]["message"]
    assert len(hf_emu.calls) == 1


# -- usage -------------------------------------------------------------------------
def test_usage_estimated_when_the_server_sends_no_details(sdk, hf_emu):
    hf_emu.fail_next(Fault(reply=Reply(200, [{"generated_text": " return fib(n-1)"}])))
    completion = sdk.chat.completions.create(model=CODE_MODEL, messages=CODE)
    assert completion.choices[0].message.content == " return fib(n-1)"
    assert completion.choices[0].finish_reason == "stop"
    # No details: the proxy counts both with its tokenizer.
    assert completion.usage.prompt_tokens == count_messages(CODE_MODEL, CODE)
    assert completion.usage.completion_tokens == count_text(CODE_MODEL, " return fib(n-1)")


def test_unreadable_answer_is_a_502(http, hf_emu):
    hf_emu.fail_next(Fault(reply=Reply(200, [])))
    r = http.post("/v1/chat/completions", json={"model": CODE_MODEL, "messages": CODE,
                                                **NO_RETRY})
    assert r.status_code == 502
    assert "cannot read" in r.json["error"]["message"]


def test_through_gunicorn(shared_gunicorn, hf_emu):
    proxy = shared_gunicorn()
    sdk = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="x", max_retries=0)
    text = sdk.chat.completions.create(model=f"huggingface/{CODE_MODEL}", messages=CODE)
    assert text.choices[0].message.content == "Hello! You said: def fib(n):"
    chunks = list(sdk.chat.completions.create(model=CHAT_MODEL, messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: ping"
