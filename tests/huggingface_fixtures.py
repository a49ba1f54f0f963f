"""Fixtures for the Hugging Face tests: the emulator (router, serverless and TGI routes), a
proxy app pointed at it, and the official openai SDK talking to that app in-process."""
from __future__ import annotations

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.huggingface import HuggingFaceEmulator

CHAT_MODEL = "huggingface/meta-llama/Meta-Llama-3-8B-Instruct"
CODE_MODEL = "stabilityai/stablecode-completion-alpha-3b-4k"
CODE_PATH = f"/hf-inference/models/{CODE_MODEL}"


@pytest.fixture(scope="session")
def _hf_server():
    emulator = HuggingFaceEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def hf_emu(_hf_server):
    _hf_server.reset_state()
    yield _hf_server
    assert not _hf_server.violations, "requests broke the Hugging Face contract:\n" + \
        "\n".join(_hf_server.violations)


@pytest.fixture
def hf_env(hf_emu) -> dict[str, str]:
    """The emulator plays the Hugging Face router (HUGGINGFACE_API_BASE)."""
    return {"HUGGINGFACE_API_KEY": hf_emu.api_key, "HUGGINGFACE_API_BASE": hf_emu.base_url}


@pytest.fixture
def make_proxy(hf_env):
    """A Flask app for the proxy on the HF env plus overrides and an optional config."""
    def make(env: dict | None = None, config: str | None = None):
        return create_app(CompletionService(load_settings({**hf_env, **(env or {})}, config)))
    return make


@pytest.fixture
def proxy(make_proxy):
    return make_proxy()


@pytest.fixture
def http(proxy):
    return proxy.test_client()


def sdk_for(app) -> openai.OpenAI:
    transport = httpx2.WSGITransport(app=app)
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=transport))


@pytest.fixture
def sdk(proxy) -> openai.OpenAI:
    return sdk_for(proxy)


@pytest.fixture
def tgi_config(write_config, hf_emu):
    """A config whose `code` model is served by its own TGI server (the emulator's /generate)."""
    def write(api_base: str | None = None, **params) -> str:
        extra = "".join(f"\n      {key}: {value}" for key, value in params.items())
        return write_config(f"""
model_list:
  - model_name: code
    params:
      model: huggingface/{CODE_MODEL}
      api_base: {api_base or hf_emu.base_url}{extra}
""")
    return write
