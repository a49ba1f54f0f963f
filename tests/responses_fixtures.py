"""The proxy with the OpenAI, Anthropic and Gemini emulators behind it and the official
openai SDK talking to it in process, for the /v1/responses tests; the models and tools
those tests share."""
from __future__ import annotations

import openai
import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.provider_fixtures import emulator_fixture, proxy_app, sdk_for

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")
gemini_emu = emulator_fixture(GeminiEmulator, "gemini_emu")

OPENAI, CLAUDE, GEMINI = "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"
MODELS = pytest.mark.parametrize("model", [OPENAI, CLAUDE, GEMINI])
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "strict": True,
           "parameters": {"type": "object", "required": ["city"], "additionalProperties": False,
                          "properties": {"city": {"type": "string"}}}}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def env(provider_env, anthropic_emu, gemini_emu):
    return {**provider_env, **anthropic_emu.proxy_env(), **gemini_emu.proxy_env()}


@pytest.fixture
def proxy(env, write_config):
    """Builds the proxy on `env` plus overrides and an optional config text; each one built
    is closed at the end of the test."""
    made = []

    def make(config: str | None = None, **extra):
        app = proxy_app({**env, **extra}, write_config(config) if config else None)
        made.append(app.extensions["switchboard"])
        return app
    yield make
    for service in made:
        service.close(5.0)


@pytest.fixture
def sdk(proxy) -> openai.OpenAI:
    return sdk_for(proxy())


def emulator_of(model, openai_emu, anthropic_emu, gemini_emu):
    return {OPENAI: openai_emu, CLAUDE: anthropic_emu, GEMINI: gemini_emu}[model]
