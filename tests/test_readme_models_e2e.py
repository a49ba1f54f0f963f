"""Every model the product's original README names answers through one real gunicorn
proxy, each from its own provider's emulator, with the official openai SDK as client."""
from __future__ import annotations

import openai
import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.cohere import CohereEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.huggingface import HuggingFaceEmulator
from tests.emulators.replicate import ReplicateEmulator
from tests.provider_fixtures import emulator_fixture, streamed_text

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")
cohere_emu = emulator_fixture(CohereEmulator, "cohere_emu")
gemini_emu = emulator_fixture(GeminiEmulator, "gemini_emu")
hf_emu = emulator_fixture(HuggingFaceEmulator, "hf_emu")
replicate_emu = emulator_fixture(ReplicateEmulator, "replicate_emu")

LLAMA2 = "replicate/meta/llama-2-70b-chat:2c1608e18606fad2812020dc541930f2d0495ce32eee50074220b87300bc16e1"
README_MODELS = [
    ("gpt-3.5-turbo", "openai"), ("gpt-4", "openai"), ("claude-2", "anthropic"),
    ("command-nightly", "cohere"), (LLAMA2, "replicate"),
    ("replicate/llama-2-70b-chat:2c1608e18606fad2812020dc541930f2d0495ce32eee50074220b87300bc16e1",
     "replicate"),
    ("stabilityai/stablecode-completion-alpha-3b-4k", "huggingface"),
    ("gemini/gemini-2.5-flash", "gemini"), ("azure/chat-deployment", "azure"),
]


@pytest.fixture
def client(shared_gunicorn, openai_emu, azure_emu, anthropic_emu, cohere_emu, gemini_emu, hf_emu,
           replicate_emu) -> openai.OpenAI:
    """The official SDK against the session's gunicorn, on every provider's emulator."""
    proxy = shared_gunicorn()
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="x", max_retries=0,
                         timeout=30)


def test_every_readme_model_answers(client):
    for model, provider in README_MODELS:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "def fib(n):"}], max_tokens=50)
        reply = raw.parse()
        assert raw.headers["x-switchboard-provider"] == provider, model
        assert "def fib(n):" in (reply.choices[0].message.content or ""), model
        assert reply.usage.total_tokens > 0, model
        cost = raw.headers["x-switchboard-cost"]  # "unknown" for a model the registry cannot price
        assert cost == "unknown" or float(cost) >= 0, model


def test_every_readme_model_streams(client):
    for model, _ in README_MODELS:
        chunks = list(client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "stream please"}],
            max_tokens=50, stream=True))
        assert "stream please" in streamed_text(chunks), model
        assert chunks[-1].choices[0].finish_reason in ("stop", "length"), model
