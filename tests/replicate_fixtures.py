"""Fixtures for the Replicate tests: the emulator, a proxy app pointed at it, and the
official openai SDK talking to that app in-process (WSGI transport)."""
from __future__ import annotations

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.replicate import ReplicateEmulator


@pytest.fixture(scope="session")
def _replicate_server():
    emulator = ReplicateEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def replicate_emu(_replicate_server):
    _replicate_server.reset_state()
    yield _replicate_server
    assert not _replicate_server.violations, "requests broke the Replicate contract:\n" + \
        "\n".join(_replicate_server.violations)


@pytest.fixture
def replicate_env(replicate_emu) -> dict[str, str]:
    return {"REPLICATE_API_TOKEN": replicate_emu.api_key,
            "REPLICATE_API_BASE": replicate_emu.base_url}


@pytest.fixture
def make_proxy(replicate_env):
    """A Flask app for the proxy on the Replicate env plus overrides and an optional config."""
    def make(env: dict | None = None, config: str | None = None):
        return create_app(CompletionService(load_settings({**replicate_env, **(env or {})},
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
