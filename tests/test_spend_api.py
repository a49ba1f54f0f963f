"""GET /spend/* on both engines, from a ledger seeded by publishing request events the way
the service does: totals, groups, days, latency percentiles, paged rows, CSV, bad input."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest

from app.usage.ledger import ledger_of
from tests.test_ledger import ledger_env, make_event  # noqa: F401  (fixture)


def at(day: int, hour: int = 12, minute: int = 0) -> float:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.utc).timestamp()


# (day, model, user, key, prompt, completion, cost, saved, extra fields)
SEED = [
    (1, "gpt-4", "alice", "k1", 100, 50, 1.25, 0.0, {}),
    (1, "claude-sonnet-4-5", "bob", "k2", 200, 20, 0.5, 0.0,
     {"provider": "anthropic", "api": "messages"}),
    (2, "gpt-4", "alice", "k1", 300, 100, 2.0, 0.0, {}),
    (2, "gpt-4", "bob", "k1", 0, 0, 0.0, 0.0,
     {"status": 502, "error_type": "upstream_error", "model": None, "provider": None}),
    (3, "gpt-4", "carol", None, 100, 50, 0.0, 0.75, {"cache": "hit"}),
    (3, "gpt-4", "carol", None, 100, 50, 1.25, 0.0, {"cache": "miss"}),
]


@pytest.fixture
def seeded(make_client, ledger_env):  # noqa: F811
    client = make_client(env=ledger_env)
    publish = client.application.extensions["switchboard"].events.publish
    for n, (day, model, user, key, prompt, completion, cost, saved, extra) in enumerate(SEED):
        publish(make_event(**{
            "started_at": at(day, minute=n), "requested_model": model, "model": model,
            "user": user, "key_id": key, "key_alias": key and f"team-{key}",
            "prompt_tokens": prompt, "completion_tokens": completion, "cost": cost,
            "saved_cost": saved, "latency_ms": 100.0 + n, **extra}))
    yield client
    # Written before the test's database goes away (tests that stop at a 400 never read).
    assert ledger_of(client.application.extensions["switchboard"]).flush(10)


def get(client, path, **params):
    r = client.get(path, query_string=params)
    assert r.status_code == 200, r.json
    return r.json


def test_totals_and_windows(seeded):
    totals = get(seeded, "/spend")
    assert totals == {"start": None, "end": None, "requests": 6, "errors": 1,
                      "prompt_tokens": 800, "completion_tokens": 270, "cached_tokens": 0,
                      "cost": 5.0, "saved_cost": 0.75, "cache_hits": 1, "cache_misses": 1,
                      "cost_unknown": 0}
    day2 = get(seeded, "/spend", start="2025-03-02", end="2025-03-02")
    assert (day2["requests"], day2["errors"], day2["cost"]) == (2, 1, 2.0)
    morning = get(seeded, "/spend", start="2025-03-01T00:00:00Z", end="2025-03-01T12:01:00+00:00")
    assert (morning["requests"], morning["cost"]) == (1, 1.25)
    assert get(seeded, "/spend", start="2025-03-04")["requests"] == 0


def test_per_api_face(seeded):
    """Which client format each request came in by: /spend/apis, /spend?group_by=api, and
    the rows filtered by it."""
    apis = {a["api"]: a for a in get(seeded, "/spend/apis")["data"]}
    assert (apis["chat"]["requests"], apis["chat"]["cost"]) == (5, 4.5)
    assert (apis["messages"]["requests"], apis["messages"]["cost"]) == (1, 0.5)
    assert get(seeded, "/spend", group_by="api")["data"] == get(seeded, "/spend/apis")["data"]
    rows = get(seeded, "/spend/logs", api="messages")["data"]
    assert [(r["api"], r["model"]) for r in rows] == [("messages", "claude-sonnet-4-5")]
    csv_rows = list(csv.reader(io.StringIO(seeded.get("/spend/apis?format=csv").text)))
    assert csv_rows[0][0] == "api" and {r[0] for r in csv_rows[1:]} == {"chat", "messages"}
    r = seeded.get("/spend", query_string={"group_by": "colour"})
    assert r.status_code == 400 and r.json["error"]["param"] == "group_by"


def test_per_model_user_key_and_day(seeded):
    models = {m["model"]: m for m in get(seeded, "/spend/models")["data"]}
    assert (models["gpt-4"]["requests"], models["gpt-4"]["cost"]) == (5, 4.5)
    assert models["gpt-4"]["errors"] == 1 and models["gpt-4"]["saved_cost"] == 0.75
    assert models["claude-sonnet-4-5"]["prompt_tokens"] == 200

    users = get(seeded, "/spend/users")["data"]
    assert [(u["user"], u["cost"]) for u in users] == [("alice", 3.25), ("carol", 1.25),
                                                       ("bob", 0.5)]
    keys = {k["key_id"]: k for k in get(seeded, "/spend/keys")["data"]}
    assert keys["k1"]["key_alias"] == "team-k1" and keys["k1"]["requests"] == 3
    assert keys[None]["requests"] == 2

    days = get(seeded, "/spend/daily", start="2025-03-01", end="2025-03-03")["data"]
    assert [(d["date"], d["requests"], d["cost"]) for d in days] == [
        ("2025-03-01", 2, 1.75), ("2025-03-02", 2, 2.0), ("2025-03-03", 2, 1.25)]
    assert [(m["model"], m["cost"]) for m in days[0]["models"]] == [
        ("gpt-4", 1.25), ("claude-sonnet-4-5", 0.5)]


def test_latency_percentiles_per_model(make_client, ledger_env):  # noqa: F811
    client = make_client(env=ledger_env)
    publish = client.application.extensions["switchboard"].events.publish
    for ms in range(1, 101):
        publish(make_event(model="gpt-4", latency_ms=float(ms)))
    publish(make_event(model="gpt-4", latency_ms=9999.0, error_type="upstream_error"))
    publish(make_event(model="gpt-4", latency_ms=0.5, cache="hit"))
    publish(make_event(model="gpt-4o", latency_ms=42.0))
    rows = {r["model"]: r for r in get(client, "/spend/latency")["data"]}
    assert rows["gpt-4"] == {"model": "gpt-4", "requests": 100, "p50_ms": 50.0, "p95_ms": 95.0}
    assert rows["gpt-4o"] == {"model": "gpt-4o", "requests": 1, "p50_ms": 42.0, "p95_ms": 42.0}


def test_logs_pages_with_a_cursor_and_filters(seeded):
    seen, cursor = [], None
    for _ in range(5):
        page = get(seeded, "/spend/logs", limit=4, **({"cursor": cursor} if cursor else {}))
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len({row["id"] for row in seen}) == 6
    assert [row["time"] for row in seen] == sorted((row["time"] for row in seen), reverse=True)
    assert seen[0]["time"] == "2025-03-03T12:05:00.000Z"

    def ids(**filters):
        return [(row["user"], row["status"]) for row in get(seeded, "/spend/logs", **filters)["data"]]

    assert ids(user="bob", status="error") == [("bob", 502)]
    assert ids(user="bob", status="success") == [("bob", 200)]
    assert ids(status=502) == [("bob", 502)]
    assert len(ids(model="gpt-4")) == 5 and len(ids(key_id="k1")) == 3
    assert ids(model="claude-sonnet-4-5") == [("bob", 200)]
    assert ids(user="' OR 1=1 --") == []            # values are bound, never SQL
    assert get(seeded, "/spend")["requests"] == 6


@pytest.mark.parametrize("path, param, value", [
    ("/spend", "start", "2025-02-30"),
    ("/spend/models", "start", "yesterday"),
    ("/spend/daily", "end", "2025-13-01"),
    ("/spend/users", "end", "9999-12-31"),
    ("/spend/logs", "limit", "1001"),
    ("/spend/logs", "limit", "0"),
    ("/spend/logs", "limit", "ten"),
    ("/spend/logs", "status", "teapot"),
    ("/spend/logs", "cursor", "not-a-cursor"),
    ("/spend/logs", "user", "nul\x00inside"),
    ("/spend/keys", "format", "xml"),
])
def test_bad_parameters_are_400_naming_the_param(make_client, tmp_path, path, param, value):
    client = make_client(env={"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    r = client.get(path, query_string={param: value})
    assert r.status_code == 400
    assert r.json["error"]["param"] == param and r.json["error"]["type"] == "invalid_request_error"


def test_end_before_start_is_400(seeded):
    r = seeded.get("/spend/daily", query_string={"start": "2025-03-03", "end": "2025-03-01"})
    assert r.status_code == 400 and r.json["error"]["param"] == "end"


def csv_rows(client, path, **params):
    r = client.get(path, query_string={"format": "csv", **params})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))


def test_every_endpoint_has_csv(seeded):
    assert csv_rows(seeded, "/spend")[0]["cost"] == "5"
    assert {r["model"]: r["requests"] for r in csv_rows(seeded, "/spend/models")} == {
        "gpt-4": "5", "claude-sonnet-4-5": "1"}
    assert [r["user"] for r in csv_rows(seeded, "/spend/users")] == ["alice", "carol", "bob"]
    assert len(csv_rows(seeded, "/spend/keys")) == 3
    daily = csv_rows(seeded, "/spend/daily")
    assert [(r["date"], r["model"], r["cost"]) for r in daily][:2] == [
        ("2025-03-01", "gpt-4", "1.25"), ("2025-03-01", "claude-sonnet-4-5", "0.5")]
    assert csv_rows(seeded, "/spend/latency")[0]["p50_ms"]
    rows = csv_rows(seeded, "/spend/logs", user="alice")
    assert len(rows) == 2 and rows[0]["attempts"] == "1" and rows[0]["stream"] == "false"


def test_csv_cells_never_run_as_formulas(make_client, ledger_env):  # noqa: F811
    client = make_client(env=ledger_env)
    client.application.extensions["switchboard"].events.publish(
        make_event(user='=HYPERLINK("http://x","y")'))
    assert csv_rows(client, "/spend/users")[0]["user"] == '\'=HYPERLINK("http://x","y")'


def test_empty_ledger_answers_zeros(make_client, ledger_env):  # noqa: F811
    client = make_client(env=ledger_env)
    assert get(client, "/spend")["requests"] == 0 and get(client, "/spend")["cost"] == 0
    assert get(client, "/spend/daily")["data"] == [] and get(client, "/spend/latency")["data"] == []
    assert get(client, "/spend/logs")["next_cursor"] is None
    r = client.get("/spend/models?format=csv")
    assert r.get_data(as_text=True).splitlines() == [
        "model,requests,errors,prompt_tokens,completion_tokens,cached_tokens,cost,saved_cost,"
        "cache_hits,cache_misses,cost_unknown"]
