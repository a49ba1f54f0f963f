"""Embeddings from Cohere (v2 embed), Gemini (batchEmbedContents) and Hugging Face (the
router's feature-extraction pipeline and a TEI server's /embed), each emulator answering
in its own wire format held to ../shared/specs: batches over the provider's limit are
split, sent concurrently and merged in order."""
from __future__ import annotations

import pytest

from app.usage.tokens import count_text
from tests.emulators.cohere import CohereEmulator
from tests.emulators.compatible import MistralEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.huggingface import HuggingFaceEmulator
from tests.emulators.model import embed_text
from tests.provider_fixtures import emulator_fixture, proxy_app

cohere_emu = emulator_fixture(CohereEmulator, "cohere_emu")
gemini_emu = emulator_fixture(GeminiEmulator, "gemini_emu")
hf_emu = emulator_fixture(HuggingFaceEmulator, "hf_emu")
mistral_emu = emulator_fixture(MistralEmulator, "mistral_emu")


@pytest.fixture
def client_for(tmp_path):
    def make(emulator, config: str | None = None):
        env = {**emulator.proxy_env(), "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
        return proxy_app(env, config).test_client()
    return make


def embed(client, model: str, inputs, **extra):
    r = client.post("/v1/embeddings", json={"model": model, "input": inputs, **extra})
    assert r.status_code == 200, r.json
    return r


def vectors(response) -> list[list[float]]:
    data = response.json["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return [d["embedding"] for d in data]


def test_cohere_input_type_default_and_option(client_for, cohere_emu):
    client = client_for(cohere_emu)
    r = embed(client, "embed-english-v3.0", "hello")
    assert vectors(r) == [embed_text("search_document:hello", 16)]
    sent = cohere_emu.calls[-1]
    assert sent.path == "/v2/embed"
    assert sent.body == {"model": "embed-english-v3.0", "texts": ["hello"],
                         "input_type": "search_document", "embedding_types": ["float"]}
    assert r.json["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    r = embed(client, "embed-english-v3.0", ["a query"], input_type="search_query")
    assert vectors(r) == [embed_text("search_query:a query", 16)]


def test_cohere_batch_over_96_is_split_and_merged_in_order(client_for, cohere_emu):
    texts = [f"text number {i}" for i in range(200)]
    r = embed(client_for(cohere_emu), "embed-english-v3.0", texts)
    assert vectors(r) == [embed_text(f"search_document:{t}", 16) for t in texts]
    sizes = sorted(len(call.body["texts"]) for call in cohere_emu.calls)
    assert sizes == [8, 96, 96]
    assert r.json["usage"]["prompt_tokens"] == 600


def test_cohere_bad_input_type(client_for, cohere_emu):
    r = client_for(cohere_emu).post("/v1/embeddings", json={
        "model": "embed-english-v3.0", "input": "x", "input_type": "poetry"})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "input_type"
    assert not cohere_emu.calls


def test_input_over_the_model_limit_is_a_400_naming_its_index(client_for, cohere_emu):
    r = client_for(cohere_emu).post("/v1/embeddings", json={
        "model": "embed-english-v3.0", "input": ["short", "word " * 600]})
    assert r.status_code == 400
    assert "index 1" in r.json["error"]["message"]
    assert r.json["error"]["param"] == "input"
    assert not cohere_emu.calls


def test_gemini_batch_task_type_and_dimensions(client_for, gemini_emu):
    texts = [f"passage {i}" for i in range(150)]
    r = embed(client_for(gemini_emu), "gemini/gemini-embedding-001", texts, dimensions=8,
              input_type="search_query")
    assert vectors(r) == [embed_text(f"RETRIEVAL_QUERY:{t}", 8) for t in texts]
    calls = gemini_emu.calls
    assert sorted(len(c.body["requests"]) for c in calls) == [50, 100]
    assert calls[0].path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    first = calls[0].body["requests"][0]
    assert first["model"] == "models/gemini-embedding-001"
    assert first["outputDimensionality"] == 8 and first["taskType"] == "RETRIEVAL_QUERY"
    # Gemini reports no usage: the proxy counts the inputs with its tokenizer
    assert r.json["usage"]["prompt_tokens"] == sum(count_text("cl100k", t) for t in texts)


def test_huggingface_router_feature_extraction(client_for, hf_emu):
    r = embed(client_for(hf_emu), "huggingface/sentence-transformers/all-MiniLM-L6-v2",
              ["one", "two"])
    assert vectors(r) == [embed_text("one", 16), embed_text("two", 16)]
    assert hf_emu.calls[-1].path == ("/hf-inference/models/sentence-transformers/"
                                     "all-MiniLM-L6-v2/pipeline/feature-extraction")


def test_tei_server_embed_batches_of_32(client_for, hf_emu, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"""
model_list:
  - model_name: local-embedder
    params: {{model: huggingface/BAAI/bge-small-en-v1.5, api_base: "{hf_emu.base_url}"}}
""")
    texts = [f"t{i}" for i in range(40)]
    r = embed(client_for(hf_emu, str(config)), "local-embedder", texts)
    assert vectors(r) == [embed_text(t, 16) for t in texts]
    assert sorted(len(c.body["inputs"]) for c in hf_emu.calls) == [8, 32]
    assert {c.path for c in hf_emu.calls} == {"/embed"}


def test_dimensions_refused_where_the_api_has_none(client_for, hf_emu):
    r = hf_emu and client_for(hf_emu).post("/v1/embeddings", json={
        "model": "huggingface/BAAI/bge-small-en-v1.5", "input": "x", "dimensions": 8})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "dimensions"


def test_chat_only_provider_has_no_embeddings(client_for, cohere_emu):
    r = client_for(cohere_emu).post("/v1/embeddings", json={"model": "command-r", "input": "x"})
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == "unsupported_operation"


def test_mistral_compatible_family(client_for, mistral_emu):
    """An OpenAI-compatible server: `dimensions` under Mistral's name, token ids as text."""
    r = embed(client_for(mistral_emu), "mistral/mistral-embed", [[15339, 1917]], dimensions=8)
    sent = mistral_emu.calls[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.body == {"model": "mistral-embed", "input": ["hello world"],
                         "encoding_format": "float", "output_dimension": 8}
    assert vectors(r) == [embed_text("hello world", 8)]


def test_token_ids_the_encoding_lacks_are_a_400(client_for, cohere_emu):
    r = client_for(cohere_emu).post("/v1/embeddings", json={
        "model": "embed-english-v3.0", "input": [[15339], [999999999]]})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == "input" and "input[1]" in r.json["error"]["message"]
    assert not cohere_emu.calls
