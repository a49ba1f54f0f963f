"""Fixtures for the Gemini tests: the emulator, a proxy app pointed at it, and the official
openai SDK talking to that app in-process (WSGI transport)."""
from __future__ import annotations

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.gemini import GeminiEmulator

__all__ = ["_gemini_server", "gemini_emu", "gemini_env", "make_gemini_proxy", "gemini_proxy",
           "gemini_http", "gemini_sdk", "sdk_for"]


@pytest.fixture(scope="session")
def _gemini_server():
    emulator = GeminiEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def gemini_emu(_gemini_server):
    _gemini_server.reset_state()
    yield _gemini_server
    assert not _gemini_server.violations, "requests broke the Gemini contract:\n" + \
        "\n".join(_gemini_server.violations)


@pytest.fixture
def gemini_env(gemini_emu) -> dict[str, str]:
    return {"GEMINI_API_KEY": gemini_emu.api_key, "GEMINI_API_BASE": gemini_emu.base_url}


@pytest.fixture
def make_gemini_proxy(gemini_env):
    """A Flask app for the proxy on the Gemini env plus overrides and an optional config."""
    def make(env: dict | None = None, config: str | None = None):
        return create_app(CompletionService(load_settings({**gemini_env, **(env or {})},
                                                          config)))
    return make


@pytest.fixture
def gemini_proxy(make_gemini_proxy):
    return make_gemini_proxy()


@pytest.fixture
def gemini_http(gemini_proxy):
    return gemini_proxy.test_client()


def sdk_for(app) -> openai.OpenAI:
    transport = httpx2.WSGITransport(app=app)
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=transport))


@pytest.fixture
def gemini_sdk(gemini_proxy) -> openai.OpenAI:
    return sdk_for(gemini_proxy)
