"""The proxy under test, for the tests of every provider.

Emulators are started once per class for the whole test process (`emulators`) and handed
to each test fresh, failing the test if its requests broke the provider's contract. A
provider's test module binds its fixtures in one statement, which defines `<prefix>_emu`,
`<prefix>_env` (the proxy environment pointing at the emulator), `make_proxy(env=,
config=)` (the proxy's Flask app), `proxy`, `http` (Flask test client) and `sdk` (the
official openai SDK talking to the app in process):

    anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
        AnthropicEmulator, "anthropic")

Below them, the small readers and inputs those tests share.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import httpx2
import openai
import pytest

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.server import Emulator


@pytest.fixture(scope="session")
def emulators() -> Iterator[Callable[[type[Emulator]], Emulator]]:
    """The running emulator of a class, started on first use and stopped at the end."""
    running: dict[type[Emulator], Emulator] = {}

    def get(emulator_class: type[Emulator]) -> Emulator:
        if emulator_class not in running:
            running[emulator_class] = emulator_class().start()
        return running[emulator_class]

    yield get
    with ThreadPoolExecutor() as pool:   # each stop waits up to half a second for its loop
        list(pool.map(Emulator.stop, running.values()))


def emulator_fixture(emulator_class: type[Emulator], name: str):
    """A fixture `name`: the class's emulator, reset before the test and checked after it."""
    @pytest.fixture(name=name)
    def fresh(emulators):
        emulator = emulators(emulator_class)
        emulator.reset_state()
        yield emulator
        assert not emulator.violations, f"requests broke the {emulator.name} contract:\n" + \
            "\n".join(emulator.violations)
    return fresh


def proxy_app(env: dict[str, str], config: str | None = None):
    """The proxy's Flask app on this environment and optional config file."""
    return create_app(CompletionService(load_settings(env, config)))


def app_maker(base: dict[str, str]):
    """`make(env=None, config=None)`: a proxy app on `base` plus env overrides, and an
    optional config file (the shape of every test module's app-making fixture)."""
    def make(env: dict | None = None, config: str | None = None):
        return proxy_app({**base, **(env or {})}, config)
    return make


def sdk_for(app) -> openai.OpenAI:
    """The official openai SDK talking to a proxy app in process (no retries of its own)."""
    return openai.OpenAI(base_url="http://proxy.test/v1", api_key="x", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.WSGITransport(app=app)))


def provider_fixtures(emulator_class: type[Emulator], prefix: str) -> tuple:
    """The fixtures of one provider's tests, in the order of the module docstring."""
    emu_name, env_name = f"{prefix}_emu", f"{prefix}_env"

    @pytest.fixture(name=env_name)
    def env(request, tmp_path) -> dict[str, str]:
        return {**request.getfixturevalue(emu_name).proxy_env(),
                "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}

    @pytest.fixture
    def make_proxy(request):
        """A proxy app on the provider's env plus overrides, and an optional config file."""
        return app_maker(request.getfixturevalue(env_name))

    @pytest.fixture
    def proxy(make_proxy):
        return make_proxy()

    @pytest.fixture
    def http(proxy):
        return proxy.test_client()

    @pytest.fixture
    def sdk(proxy) -> openai.OpenAI:
        return sdk_for(proxy)

    return emulator_fixture(emulator_class, emu_name), env, make_proxy, proxy, http, sdk


# -- what the provider tests send and read -----------------------------------------------
NO_RETRY = {"num_retries": 0}   # see each upstream error itself, not the service's retries
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}}}}}


def sent(emulator: Emulator) -> dict:
    """The body of the last request the emulator received."""
    return emulator.calls[-1].body


def sse_frames(response) -> list[dict]:
    """The JSON frames of a proxy stream (a Flask test response), which must end in [DONE]."""
    text = response.get_data(as_text=True)
    assert text.endswith("data: [DONE]\n\n")
    return [json.loads(block[len("data: "):]) for block in text.split("\n\n")
            if block.startswith("data: ") and block != "data: [DONE]"]


def streamed_text(chunks) -> str:
    """The content the SDK's stream chunks carry, joined."""
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
