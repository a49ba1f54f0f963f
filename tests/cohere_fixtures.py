"""Fixtures for the Cohere tests: the emulator, a proxy app pointed at it, and the official
openai SDK talking to that app in-process (WSGI transport)."""
from __future__ import annotations

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.cohere import CohereEmulator


@pytest.fixture(scope="session")
def _cohere_server():
    emulator = CohereEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def cohere_emu(_cohere_server):
    _cohere_server.reset_state()
    yield _cohere_server
    assert not _cohere_server.violations, "the Cohere contract was broken:\n" + \
        "\n".join(_cohere_server.violations)


@pytest.fixture
def cohere_env(cohere_emu) -> dict[str, str]:
    return {"COHERE_API_KEY": cohere_emu.api_key, "COHERE_API_BASE": cohere_emu.base_url}


@pytest.fixture
def make_proxy(cohere_env):
    """The proxy's Flask app on the Cohere env plus overrides and an optional config file."""
    def make(env: dict | None = None, config: str | None = None):
        return create_app(CompletionService(load_settings({**cohere_env, **(env or {})}, config)))
    return make


@pytest.fixture
def proxy(make_proxy):
    return make_proxy()


@pytest.fixture
def http(proxy):
    return proxy.test_client()


def sdk_for(app) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))


@pytest.fixture
def sdk(proxy) -> openai.OpenAI:
    return sdk_for(proxy)
