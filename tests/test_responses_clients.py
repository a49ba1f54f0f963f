"""Real Responses-API clients against a real gunicorn proxy: the async openai SDK, the
OpenAI Agents SDK running an agent with a function tool, and Codex CLI (npm) answering one
turn through OpenAI (pass-through) and through an alias to Claude (translation), with the
ledger rows carrying the virtual key's id."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
import urllib3

from tests.conftest import module_gunicorn
from tests.emulators.anthropic import AnthropicEmulator
from tests.keys_fixtures import ADMIN, MASTER
from tests.provider_fixtures import emulator_fixture

ROOT = Path(__file__).resolve().parents[1]
CODEX = ROOT / "node_modules" / ".bin" / "codex"
anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")
CONFIG = """model_list:
  - model_name: claude-alias
    params: {model: claude-sonnet-4-5}
"""


pytestmark = pytest.mark.usefixtures("openai_emu", "azure_emu", "anthropic_emu")


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def gateway(request, emulators, tmp_path_factory):
    """One gunicorn per worker class for the module (each test reads back only its own
    responses and its own key's rows)."""
    config = tmp_path_factory.mktemp("config") / "switchboard.yaml"
    config.write_text(CONFIG)
    return module_gunicorn(request, {**emulators(AnthropicEmulator).proxy_env(),
                                     "SWITCHBOARD_CONFIG": str(config),
                                     "SWITCHBOARD_WORKER_CLASS": request.param,
                                     "SWITCHBOARD_MASTER_KEY": MASTER})


def admin(gateway, method: str, path: str, body: dict | None = None) -> dict:
    response = urllib3.request(method, gateway.base_url + path, json=body, headers=ADMIN,
                               timeout=10)
    assert response.status < 300, response.data
    return response.json()


def test_async_sdk(gateway):
    async def run():
        client = openai.AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=MASTER,
                                    max_retries=0)
        for model in ("gpt-4o-mini", "claude-alias"):
            first = await client.responses.create(model=model, input="hello async")
            assert first.output_text == "Hello! You said: hello async"
            stream = await client.responses.create(model=model, input="and streamed",
                                                   previous_response_id=first.id, stream=True)
            kinds = [event.type async for event in stream]
            assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
            final_id = None
            async with client.responses.stream(model=model, input="once more") as events:
                final_id = (await events.get_final_response()).id
            assert (await client.responses.retrieve(final_id)).output_text == \
                "Hello! You said: once more"
            items = await client.responses.input_items.list(final_id)
            assert [item.type for item in items.data] == ["message"]
            await client.responses.delete(final_id)
        await client.close()
    asyncio.run(run())


def test_agents_sdk_runs_an_agent_with_a_function_tool(gateway):
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    called = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(base_url=gateway.base_url + "/v1", api_key=MASTER,
                                max_retries=0)
    for model in ("gpt-4o-mini", "claude-alias"):
        called.clear()
        agent = agents.Agent(name="forecaster", instructions="Use your tools.",
                             tools=[get_weather],
                             model=agents.OpenAIResponsesModel(model=model, openai_client=client))
        result = agents.Runner.run_sync(agent, "call get_weather please")
        assert called == ["Paris"], model
        assert result.final_output == "The tool returned: sunny in Paris", model


def _codex_unavailable() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed: Codex CLI cannot run"
    if not CODEX.exists():
        return f"{CODEX} is absent: run `make test` (it installs Codex CLI with npm)"
    return None


def run_codex(gateway, tmp_path: Path, model: str, key: str) -> subprocess.CompletedProcess:
    home = tmp_path / f"home-{model}"
    (home / ".codex").mkdir(parents=True)
    (home / ".codex" / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "switchboard"\n\n'
        f'[model_providers.switchboard]\nname = "Switchboard"\n'
        f'base_url = "{gateway.base_url}/v1"\nenv_key = "SWITCHBOARD_KEY"\n'
        f'wire_api = "responses"\n')
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
           "CODEX_HOME": str(home / ".codex"), "SWITCHBOARD_KEY": key}
    return subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", "say hi"], env=env,
                          cwd=home, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_codex_cli_one_turn(gateway, tmp_path, openai_emu, anthropic_emu):
    reason = _codex_unavailable()
    if reason:
        print(f"\n[codex] skipped: {reason}", file=sys.stderr)
        pytest.skip(reason)
    key = admin(gateway, "POST", "/key/generate", {"alias": "codex"})
    for model, emulator in (("gpt-4o-mini", openai_emu), ("claude-alias", anthropic_emu)):
        done = run_codex(gateway, tmp_path, model, key["key"])
        assert done.returncode == 0, done.stderr[-3000:]
        # The emulated model echoes the last user turn (Codex adds its environment to it).
        assert "Hello! You said:" in done.stdout and "say hi\n" in done.stdout, done.stdout
        assert emulator.calls, model
    if openai_emu.calls[-1].body.get("tools"):  # Codex's default tools went as they were
        assert any(t["type"] == "namespace" for t in openai_emu.calls[-1].body["tools"])
    names = [t["name"] for t in anthropic_emu.calls[-1].body.get("tools") or ()]
    assert "exec_command" in names
    deadline = time.monotonic() + 10
    while True:
        rows = admin(gateway, "GET", f"/spend/logs?key_id={key['key_id']}")["data"]
        if len(rows) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted((r["provider"], r["api"], r["status"]) for r in rows) == [
        ("anthropic", "responses", 200), ("openai", "responses", 200)], json.dumps(rows)[:2000]
