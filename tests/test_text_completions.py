"""POST /v1/completions with the official openai SDK and plain HTTP: OpenAI's completion
models (plain, streamed, with suffix and echo), a chat model answering a prompt, and the
400s for what a chat model cannot do."""
from __future__ import annotations

import httpx2
import openai
import pytest

from tests.provider_fixtures import proxy_app, sse_frames

MODEL = "gpt-3.5-turbo-instruct"


@pytest.fixture
def app(provider_env):
    return proxy_app(provider_env)


@pytest.fixture
def sdk(app) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))


def test_sdk_plain(sdk, openai_emu):
    answer = sdk.completions.create(model=MODEL, prompt="def add(a, b):", max_tokens=10)
    assert answer.object == "text_completion"
    assert answer.id.startswith("cmpl-")
    assert answer.choices[0].text == " b): and so on"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    call = openai_emu.calls[-1]
    assert call.path == "/v1/completions"
    assert call.body == {"model": MODEL, "prompt": "def add(a, b):", "max_tokens": 10}


def test_sdk_streamed(sdk):
    chunks = list(sdk.completions.create(model=MODEL, prompt="count to", stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " to and so on"
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens > 0


def test_sdk_suffix(sdk, openai_emu):
    answer = sdk.completions.create(model=MODEL, prompt="def f(x):\n    return",
                                    suffix="\n\nprint(f(2))", max_tokens=20)
    assert answer.choices[0].text == " [middle of return and print(f(2))]"
    assert openai_emu.calls[-1].body["suffix"] == "\n\nprint(f(2))"


def test_echo_and_several_prompts(app):
    r = app.test_client().post("/v1/completions", json={
        "model": MODEL, "prompt": ["one two", "three"], "echo": True, "n": 2})
    assert r.status_code == 200, r.json
    texts = [c["text"] for c in r.json["choices"]]
    assert texts == ["one two two and so on"] * 2 + ["three three and so on"] * 2


def test_stream_over_http_ends_with_done(app):
    r = app.test_client().post("/completions", json={"model": MODEL, "prompt": "a", "stream": True})
    frames = sse_frames(r)
    assert frames and all(f["object"] == "text_completion" for f in frames)


def test_chat_model_gets_the_prompt_as_one_user_message(sdk, openai_emu):
    answer = sdk.completions.create(model="gpt-4o-mini", prompt="ping")
    assert answer.choices[0].text == "Hello! You said: ping"
    call = openai_emu.calls[-1]
    assert call.path == "/v1/chat/completions"
    assert call.body["messages"] == [{"role": "user", "content": "ping"}]
    assert "prompt" not in call.body


def test_chat_model_refuses_suffix(app, openai_emu):
    r = app.test_client().post("/v1/completions", json={
        "model": "gpt-4o-mini", "prompt": "a", "suffix": "b"})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "suffix"
    assert not openai_emu.calls


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL}, "prompt"),
    ({"model": MODEL, "prompt": ""}, "prompt"),
    ({"model": MODEL, "prompt": "a", "max_tokens": "5"}, "max_tokens"),
    ({"model": MODEL, "prompt": "a", "logprobs": 9}, "logprobs"),
    ({"prompt": "a"}, "model"),
])
def test_bad_input(app, body, param):
    r = app.test_client().post("/v1/completions", json=body)
    assert r.status_code == 400
    assert r.json["error"]["param"] == param
