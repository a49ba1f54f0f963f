"""Legacy `functions` requests (no `tools`) are answered in the legacy shape by every
provider, plain and streamed, and a cached stream replays it."""
from __future__ import annotations

import json

import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.cohere import CohereEmulator
from tests.emulators.compatible import MistralEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.huggingface import HuggingFaceEmulator
from tests.emulators.openai import OpenAIEmulator
from tests.huggingface_fixtures import CHAT_MODEL
from tests.provider_fixtures import WEATHER, proxy_app, sdk_for

FUNCTIONS = [WEATHER["function"]]
ASK = [{"role": "user", "content": "use get_weather"}]
CASES = {"anthropic": (AnthropicEmulator, "claude-sonnet-4-5"),
         "gemini": (GeminiEmulator, "gemini/gemini-2.5-flash"),
         "cohere": (CohereEmulator, "command-r-plus"),
         "openai": (OpenAIEmulator, "gpt-4o"),
         "mistral": (MistralEmulator, "mistral/mistral-large-latest"),   # tools only
         "huggingface": (HuggingFaceEmulator, CHAT_MODEL)}               # tools only


@pytest.fixture(params=list(CASES))
def sdk(request, emulators, tmp_path, write_config):
    emulator_class, model = CASES[request.param]
    emulator = emulators(emulator_class)
    emulator.reset_state()
    env = {**emulator.proxy_env(), "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
    client = sdk_for(proxy_app(env, write_config("cache: {enabled: true}\n")))
    client.model = model
    yield client
    assert not emulator.violations, emulator.violations


def test_plain_answer_is_function_call(sdk):
    reply = sdk.chat.completions.create(model=sdk.model, messages=ASK, functions=FUNCTIONS,
                                        function_call={"name": "get_weather"})
    choice = reply.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.tool_calls is None
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Paris"}


def test_legacy_history_goes_to_a_tools_only_server_as_tool_calls(emulators, tmp_path):
    emulator = emulators(MistralEmulator)
    emulator.reset_state()
    sdk = sdk_for(proxy_app({**emulator.proxy_env(),
                             "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}))
    messages = ASK + [{"role": "assistant", "content": None, "function_call": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"role": "function", "name": "get_weather", "content": "cold"}]
    reply = sdk.chat.completions.create(model="mistral/mistral-large-latest", messages=messages,
                                        functions=FUNCTIONS)
    assert reply.choices[0].message.content == "The tool returned: cold"
    wire = emulator.calls[-1].body
    assert wire["tools"] == [WEATHER] and "functions" not in wire
    assert wire["messages"][1]["tool_calls"][0]["id"] == wire["messages"][2]["tool_call_id"] \
        == "fn0000001"
    assert not emulator.violations, emulator.violations


def test_stream_is_function_call_deltas_and_replays_from_the_cache(sdk):
    for cache in ("miss", "hit"):
        r = sdk.chat.completions.with_raw_response.create(
            model=sdk.model, messages=ASK, functions=FUNCTIONS,
            function_call={"name": "get_weather"}, stream=True)
        assert r.headers["x-switchboard-cache"] == cache
        chunks = [c for c in r.parse() if c.choices]
        assert not any(c.choices[0].delta.tool_calls for c in chunks)
        calls = [c.choices[0].delta.function_call for c in chunks
                 if c.choices[0].delta.function_call]
        assert calls[0].name == "get_weather"
        assert json.loads("".join(c.arguments or "" for c in calls)) == {"city": "Paris"}
        assert chunks[-1].choices[0].finish_reason == "function_call"
