"""Claude Code itself (npm `@anthropic-ai/claude-code`, installed by `make test` into
node_modules) pointed at a real gunicorn proxy with a virtual key: a one-turn answer and a
turn that calls a tool, passed through to the Anthropic emulator and translated to the
OpenAI emulator through a `claude-*` alias; the ledger holds the key's rows and the key's
budget is charged."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.keys_fixtures import ADMIN, MASTER
from tests.messages_fixtures import anthropic_emu, gemini_emu, messages_env  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
CLAUDE = ROOT / "node_modules" / ".bin" / "claude"
ALIAS = 'model_list:\n  - model_name: "claude-*"\n    params: {model: openai/gpt-4o-mini}\n'
# Claude Code's default model is newer than the registry: priced here, so budgets are charged.
PRICED = ('model_list:\n  - model_name: "claude-*"\n    params: {model: anthropic/claude-opus-5-5,'
          ' input_cost_per_token: 0.000005, output_cost_per_token: 0.000025}\n')


@pytest.fixture(scope="module")
def claude() -> str:
    if shutil.which("node") is None:
        print("SKIPPED Claude Code tests: Node.js is not installed")
        pytest.skip("Node.js is not installed: Claude Code cannot run")
    if not CLAUDE.exists():
        print("SKIPPED Claude Code tests: run `npm install` (make test does) for node_modules")
        pytest.skip("Claude Code is not installed in node_modules (make test installs it)")
    return str(CLAUDE)


def run_claude(claude: str, proxy, key: str, prompt: str, home: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home),
           "ANTHROPIC_BASE_URL": proxy.base_url, "ANTHROPIC_API_KEY": key,
           "DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_AUTOUPDATER": "1"}
    done = subprocess.run([claude, "-p", prompt, "--output-format", "json"], env=env,
                          cwd=home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture
def gunicorn_proxy(messages_env, start_gunicorn, write_config, tmp_path, worker_class):
    def start(config: str):
        return start_gunicorn({**messages_env, "SWITCHBOARD_MASTER_KEY": MASTER,
                               "SWITCHBOARD_CONFIG": write_config(config),
                               "SWITCHBOARD_WORKER_CLASS": worker_class})
    return start


def admin(proxy, method: str, path: str, **kwargs):
    import urllib3
    response = urllib3.request(method, proxy.base_url + path, headers=ADMIN, timeout=10,
                               **kwargs)
    assert response.status == 200, response.data[:500]
    return response.json()


@pytest.mark.parametrize("alias", [PRICED, ALIAS], ids=["anthropic", "openai-through-alias"])
def test_claude_code_answers_and_calls_a_tool(claude, gunicorn_proxy, alias, anthropic_emu,
                                              openai_emu, tmp_path):
    proxy = gunicorn_proxy(alias)
    key = admin(proxy, "POST", "/key/generate", json={"max_budget": 5.0})
    home = tmp_path / "home"
    home.mkdir()
    emulator = openai_emu if alias == ALIAS else anthropic_emu

    answer = run_claude(claude, proxy, key["key"], "say hi", home)
    assert answer["is_error"] is False and "say hi" in answer["result"]
    calls = len(emulator.calls)
    assert calls >= 1

    used = run_claude(claude, proxy, key["key"], "Please use Read now", home)
    assert used["is_error"] is False and "The tool returned" in used["result"]
    assert len(emulator.calls) >= calls + 2  # the tool call, then the answer to its result

    spent = admin(proxy, "GET", f"/key/info?key_id={key['key_id']}")["spend"]
    deadline = time.monotonic() + 10  # the other worker's rows arrive within its flush interval
    while True:
        rows = admin(proxy, "GET", f"/spend/logs?key_id={key['key_id']}")["data"]
        if sum(row["cost"] for row in rows) == pytest.approx(spent) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows and {row["api"] for row in rows} == {"messages"}
    assert all(row["status"] == 200 for row in rows)
    assert spent == pytest.approx(sum(row["cost"] for row in rows)) and spent > 0
