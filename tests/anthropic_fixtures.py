"""Fixtures for the Anthropic tests: the emulator, a proxy app pointed at it, and the
official openai SDK talking to that app in-process (WSGI transport)."""
from __future__ import annotations

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.anthropic import AnthropicEmulator


@pytest.fixture(scope="session")
def _anthropic_server():
    emulator = AnthropicEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def anthropic_emu(_anthropic_server):
    _anthropic_server.reset_state()
    yield _anthropic_server
    assert not _anthropic_server.violations, "requests broke the Anthropic contract:\n" + \
        "\n".join(_anthropic_server.violations)


@pytest.fixture
def anthropic_env(anthropic_emu) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": anthropic_emu.api_key,
            "ANTHROPIC_API_BASE": anthropic_emu.base_url}


@pytest.fixture
def make_proxy(anthropic_env):
    """A Flask app for the proxy on the Anthropic env plus overrides and an optional config."""
    def make(env: dict | None = None, config: str | None = None):
        return create_app(CompletionService(load_settings({**anthropic_env, **(env or {})},
                                                          config)))
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
