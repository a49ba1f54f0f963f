"""The ledger on both engines: one row per request whatever happened to it, the fields it
keeps, messages only when asked, and a writer that loses nothing (batches, a full queue,
a database that fails for a while, the end of the process)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import pytest

from app.config import ConfigError, load_settings
from app.service.completion import CompletionService
from app.service.events import RequestEvent
from app.usage.ledger import MIGRATIONS, Ledger, ledger_of
from app.usage.spend import Spend, Window
from tests.emulators.openai import openai_error
from tests.emulators.server import Fault

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER = [{"role": "user", "content": "what does it cost"}]


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_env(request, tmp_path) -> dict[str, str]:
    """Where the proxy keeps its ledger: an SQLite file, or a fresh PostgreSQL database."""
    env = {"SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    return env


def logs(client, **params) -> dict[str, dict]:
    r = client.get("/spend/logs", query_string={"limit": 1000, **params})
    assert r.status_code == 200, r.json
    return {row["request_id"]: row for row in r.json["data"]}


def ask(client, request_id: str, **body):
    return client.post("/v1/chat/completions", headers={"x-request-id": request_id},
                       json={"model": "gpt-4", "messages": USER, **body})


def make_event(**fields) -> RequestEvent:
    values = {"request_id": uuid.uuid4().hex, "started_at": time.time(),
              "requested_model": "gpt-4", "model": "gpt-4", "provider": "openai",
              "prompt_tokens": 10, "completion_tokens": 5, "cost": 0.0006}
    return RequestEvent(**{**values, **fields})


def test_one_row_per_request_success_or_failure(make_client, ledger_env, openai_emu):
    client = make_client(env=ledger_env)
    ok = ask(client, "req-ok", user="alice", metadata={"team": "search"})
    stream = ask(client, "req-stream", stream=True, stream_options={"include_usage": True})
    stream_body = stream.get_data(as_text=True)
    missing = ask(client, "req-404", model="no-such-model")
    bad = ask(client, "req-400", temperature=9)
    openai_emu.fail_next(Fault(reply=openai_error(500, "upstream broke", "server_error"), times=5))
    broken = ask(client, "req-5xx", num_retries=1)
    assert (ok.status_code, stream.status_code, missing.status_code, bad.status_code,
            broken.status_code) == (200, 200, 404, 400, 502)

    rows = logs(client)
    assert sorted(rows) == ["req-400", "req-404", "req-5xx", "req-ok", "req-stream"]

    row = rows["req-ok"]
    usage = ok.json["usage"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage["prompt_tokens"],
                                                                usage["completion_tokens"])
    assert Decimal(repr(row["cost"])) == Decimal(ok.headers["x-switchboard-cost"])
    assert row["cost"] > 0 and row["status"] == 200 and row["error_type"] is None
    assert (row["model"], row["provider"], row["user"]) == ("gpt-4", "openai", "alice")
    assert row["metadata"] == {"team": "search"}
    assert row["attempts"] == 1 and row["attempts_detail"][0]["model"] == "gpt-4"
    assert row["latency_ms"] > 0 and row["ttft_ms"] is None and row["stream"] is False
    assert row["usage_estimated"] is False and row["cache"] == "off"
    assert {r["api"] for r in rows.values()} == {"chat"}  # the face every request came in by

    row = rows["req-stream"]
    assert row["stream"] is True and row["ttft_ms"] is not None and row["cost"] > 0
    assert f'"cost":{row["cost"]}' in stream_body.replace(" ", "")

    assert rows["req-404"]["status"] == 404 and rows["req-404"]["error_code"] == "model_not_found"
    assert rows["req-404"]["requested_model"] == "no-such-model" and rows["req-404"]["attempts"] == 0
    assert rows["req-400"]["status"] == 400
    assert rows["req-400"]["error_type"] == "invalid_request_error"
    failed = rows["req-5xx"]
    assert failed["status"] == 502 and failed["cost"] == 0 and failed["retries"] == 1
    assert [a["status"] for a in failed["attempts_detail"]] == [502, 502]
    assert failed["attempts"] == 2


def test_messages_kept_only_when_turned_on(make_client, write_config, ledger_env, openai_emu):
    plain = make_client(env=ledger_env)
    ask(plain, "not-kept")
    assert logs(plain)["not-kept"]["messages"] is None
    assert logs(plain)["not-kept"]["response"] is None

    keeping = make_client(env=ledger_env, config=write_config("ledger: {store_messages: true}"))
    ask(keeping, "kept")
    row = logs(keeping)["kept"]
    assert row["messages"] == USER
    assert row["response"]["choices"][0]["message"]["content"] == \
        "Hello! You said: what does it cost"

    redacting = make_client(env=ledger_env, config=write_config(
        "ledger: {store_messages: true}\nredact_messages: true"))
    ask(redacting, "redacted")
    assert logs(redacting)["redacted"]["messages"] is None


@pytest.mark.parametrize("section, where", [
    ("{store_messages: maybe}", "ledger.store_messages"),
    ("{batch_size: 0}", "ledger.batch_size"),
    ("{flush_every: 2}", "ledger.flush_every"),
])
def test_bad_ledger_config_names_the_field(write_config, tmp_path, section, where):
    path = write_config(f"ledger: {section}")
    with pytest.raises(ConfigError, match=where):
        CompletionService(load_settings({"SWITCHBOARD_DATA_DIR": str(tmp_path)}, path))


def test_schema_is_migrated_once(ledger_env):
    settings = load_settings(ledger_env)
    first = ledger_of(CompletionService(settings))
    ledger_of(CompletionService(settings))   # a second start finds it done
    assert first.database.query(
        "SELECT version FROM schema_migrations WHERE owner = ? ORDER BY version",
        ("ledger",)) == [(version,) for version in range(1, len(MIGRATIONS) + 1)]


def _ledger(ledger_env, **options) -> Ledger:
    service = CompletionService(load_settings(ledger_env))
    return Ledger(ledger_of(service).database, **options)


def _count(ledger: Ledger) -> int:
    return Spend(ledger.database).totals(Window())["requests"]


def test_handle_only_enqueues_and_rows_arrive_in_batches(ledger_env):
    ledger = _ledger(ledger_env, batch_size=50, flush_interval=30)
    for _ in range(120):
        ledger.handle(make_event())
    deadline = time.monotonic() + 10
    while _count(ledger) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    assert _count(ledger) == 100     # two full batches; the rest waits for its interval
    ledger.close(10)
    assert _count(ledger) == 120


def test_row_ids_grow_with_time(ledger_env):
    """Each row lands at the end of the primary-key index (a random id made every insert
    touch a random page of it, the more costly the larger the ledger)."""
    ledger = _ledger(ledger_env, batch_size=500, flush_interval=30)
    handled = []
    for _ in range(40):
        event = make_event()
        ledger.handle(event)
        handled.append(event.request_id)
        time.sleep(0.002)   # rows a few ms apart: each in a millisecond of its own
    ledger.close(10)
    id_of = dict((request_id, row_id) for row_id, request_id in
                 ledger.database.query("SELECT id, request_id FROM ledger"))
    ids_as_handled = [id_of[request_id] for request_id in handled]
    assert len(set(ids_as_handled)) == 40
    assert sorted(ids_as_handled) == ids_as_handled


def test_a_full_queue_waits_instead_of_dropping(ledger_env):
    ledger = _ledger(ledger_env, batch_size=5, flush_interval=0.01, queue_size=3)
    threads = [threading.Thread(target=lambda: [ledger.handle(make_event()) for _ in range(25)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ledger.close(20)
    assert _count(ledger) == 200


def test_rows_survive_a_database_failure(ledger_env):
    ledger = _ledger(ledger_env, flush_interval=0.01)
    ledger.database.execute("ALTER TABLE ledger RENAME TO ledger_away")
    for _ in range(7):
        ledger.handle(make_event())
    assert not ledger.flush(0.5)    # every insert fails while the table is away
    ledger.database.execute("ALTER TABLE ledger_away RENAME TO ledger")
    assert ledger.flush(15)
    assert _count(ledger) == 7


def test_library_use_flushes_at_interpreter_exit(make_client, provider_env, ledger_env):
    """`from app import completion` in a script that ends at once: the row is written."""
    script = ("from app import completion\n"
              "completion('gpt-4', [{'role': 'user', 'content': 'bye'}], user='script')\n")
    env = {"PATH": os.environ.get("PATH", ""), **provider_env, **ledger_env}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    rows = list(logs(make_client(env=ledger_env)).values())
    assert [(row["user"], row["status"]) for row in rows] == [("script", 200)]


def test_a_model_without_a_price_is_cost_unknown_not_free(make_client, write_config, ledger_env,
                                                          openai_emu):
    """No price in the registry or the deployment: `x-switchboard-cost: unknown`, the row and
    the event flag it, and /spend says how many requests had no price. A price of 0 in config
    is free, not unknown."""
    config = write_config(f"""
model_list:
  - model_name: local
    params: {{model: openai/my-llama, api_base: {openai_emu.base_url}/v1}}
  - model_name: free
    params: {{model: openai/my-llama, api_base: {openai_emu.base_url}/v1,
              input_cost_per_token: 0, output_cost_per_token: 0}}
ledger: {{flush_interval: 0.01}}
""")
    client = make_client(env=ledger_env, config=config)
    seen = []
    client.application.extensions["switchboard"].events.subscribe(seen.append)
    unpriced = ask(client, "unpriced", model="local")
    assert unpriced.status_code == 200 and unpriced.headers["x-switchboard-cost"] == "unknown"
    free = ask(client, "free", model="free")
    assert free.headers["x-switchboard-cost"] == "0"
    priced = ask(client, "priced")
    assert Decimal(priced.headers["x-switchboard-cost"]) > 0
    streamed = ask(client, "unpriced-stream", model="local", stream=True,
                   stream_options={"include_usage": True})
    usage_chunk = [line for line in streamed.get_data(as_text=True).split("\n\n")
                   if '"usage"' in line and '"choices":[]' in line.replace(" ", "")]
    assert usage_chunk and '"cost":null' in usage_chunk[0].replace(" ", "")
    assert {e.request_id: e.cost_unknown for e in seen} == {
        "unpriced": True, "free": False, "priced": False, "unpriced-stream": True}
    ledger_of(client.application.extensions["switchboard"]).flush(10)
    rows = logs(client)
    assert (rows["unpriced"]["cost_unknown"], rows["unpriced"]["cost"]) == (True, 0)
    assert not rows["free"]["cost_unknown"] and not rows["priced"]["cost_unknown"]
    totals = client.get("/spend").json
    assert (totals["requests"], totals["cost_unknown"]) == (4, 2)
    by_model = {row["model"]: row for row in client.get("/spend/models").json["data"]}
    assert by_model["openai/my-llama"]["cost_unknown"] == 2
