"""End to end: gunicorn from gunicorn.conf.py, the official openai SDK as the client."""
from __future__ import annotations

import openai
import pytest
import urllib3


@pytest.fixture
def proxy(shared_gunicorn, worker_class, openai_emu):
    """The session's gunicorn of that worker class: each test here reads only its answers."""
    return shared_gunicorn(worker_class)


def sdk(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused", max_retries=0)


def test_sdk_chat_completion(proxy):
    client = sdk(proxy)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=[{"role": "user", "content": "hello proxy"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello! You said: hello proxy"
    assert completion.usage.total_tokens > 0
    assert raw.headers["x-switchboard-provider"] == "openai"
    assert float(raw.headers["x-switchboard-overhead-ms"]) >= 0


def test_sdk_stream(proxy):
    client = sdk(proxy)
    stream = client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "count the words"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! You said: count the words"
    assert chunks[-1].usage.total_tokens > 0


def test_langchain_chat_and_stream(proxy):
    from langchain_openai import ChatOpenAI
    chat = ChatOpenAI(model="gpt-4", base_url=f"{proxy.base_url}/v1", api_key="unused",
                      max_retries=0)
    assert chat.invoke("hello langchain").content == "Hello! You said: hello langchain"
    assert "".join(c.content for c in chat.stream("stream it")) == \
        "Hello! You said: stream it"


def test_sdk_errors(proxy):
    client = sdk(proxy)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope-model", messages=[{"role": "user",
                                                                      "content": "x"}])
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}],
                                       temperature=9)
    assert info.value.body["param"] == "temperature"


def test_sdk_models(proxy):
    ids = [m.id for m in sdk(proxy).models.list()]
    assert "gpt-4" in ids


def test_unknown_path_is_json_under_gunicorn(proxy):
    r = urllib3.request("GET", f"{proxy.base_url}/admin.php")
    assert r.status == 404
    assert r.json()["error"]["code"] == "not_found"


def test_invalid_config_stops_start(start_gunicorn, write_config):
    path = write_config("model_list: [{model_name: broken}]")
    with pytest.raises(RuntimeError) as info:
        start_gunicorn({"SWITCHBOARD_CONFIG": path})
    assert "model_list[0] (model_name 'broken')" in str(info.value)
