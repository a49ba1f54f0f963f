"""Embeddings and text completions through a real gunicorn (gevent and gthread workers),
with the official openai SDK: a batch split into concurrent parts, merged in order, and a
streamed text completion."""
from __future__ import annotations

import openai
import pytest

from tests.emulators.cohere import CohereEmulator
from tests.emulators.model import embed_text
from tests.provider_fixtures import emulator_fixture

cohere_emu = emulator_fixture(CohereEmulator, "cohere_emu")


def test_split_batch_and_streamed_completion(shared_gunicorn, worker_class, openai_emu,
                                             cohere_emu):
    proxy = shared_gunicorn(worker_class)
    client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused", max_retries=0)
    texts = [f"document {i}" for i in range(250)]
    answer = client.embeddings.create(model="embed-english-v3.0", input=texts,
                                      encoding_format="float")
    assert [d.embedding for d in answer.data] == [
        pytest.approx(embed_text(f"search_document:{t}", 16)) for t in texts]
    assert sorted(len(c.body["texts"]) for c in cohere_emu.calls) == [58, 96, 96]
    chunks = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="one two",
                                            stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " two and so on"
