"""The proxy with the Anthropic, OpenAI and Gemini emulators behind it, and the official
anthropic SDK (sync and async) talking to it in process; every answer the proxy gives on
the Messages paths is held to Anthropic's response schemas."""
from __future__ import annotations

import json

import anthropic
import httpx2
import pytest

from tests.emulators.anthropic import CONTRACT, ERROR, EVENT, MESSAGE, AnthropicEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.provider_fixtures import app_maker, emulator_fixture

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")
gemini_emu = emulator_fixture(GeminiEmulator, "gemini_emu")
COUNT = "/components/schemas/CountMessageTokensResponse"


def schema_problems(response) -> list[str]:
    """What in a proxy answer on a Messages path breaks Anthropic's response schemas."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        problems = []
        for event, data in sse_events(response.get_data(as_text=True)):
            problems += CONTRACT.errors(ERROR if event == "error" else EVENT, data)
        return problems
    body = response.json
    if response.status_code >= 400:
        return CONTRACT.errors(ERROR, body)
    return CONTRACT.errors(COUNT if "input_tokens" in body and len(body) == 1 else MESSAGE, body)


def sse_events(text: str) -> list[tuple[str | None, dict]]:
    events = []
    for block in text.split("\n\n"):
        event = None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[len("data: "):])))
    return events


@pytest.fixture
def messages_env(anthropic_emu, openai_emu, gemini_emu, tmp_path) -> dict[str, str]:
    return {**anthropic_emu.proxy_env(), **openai_emu.proxy_env(), **gemini_emu.proxy_env(),
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def make_app(messages_env):
    return app_maker(messages_env)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def http(app):
    return checked_client(app)


def checked_client(app):
    """A Flask test client whose Messages answers are held to Anthropic's schemas."""
    client = app.test_client()
    original = client.open

    def checked(*args, **kwargs):
        response = original(*args, **kwargs)
        path = kwargs.get("path") or (args[0] if args else "")
        if "/messages" in str(path):
            assert schema_problems(response) == [], response.get_data(as_text=True)[:2000]
        return response
    client.open = checked
    return client


def sdk_for(app, api_key: str = "x") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url="http://proxy.test", api_key=api_key, max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))


@pytest.fixture
def sdk(app) -> anthropic.Anthropic:
    return sdk_for(app)
