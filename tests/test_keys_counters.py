"""What a virtual key costs per request, and the guarantees kept while it costs little: a key
read once per key_refresh_seconds, admission and settling one statement each on PostgreSQL
(counted by the server itself, pg_stat_statements), leases of a crashed worker that lapse,
and changes seen within the documented bounds."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from app.keys.allowance import SLICE_SECONDS
from app.keys.redis_counters import CORRECTION_SECONDS
from tests.emulators.server import Fault
from tests.keys_fixtures import ADMIN, ask, bearer, fresh_window, generate
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)

REQUESTS = 20
# The ledger writes nothing during a measurement (its batch waits a minute), and a key is
# read once: every other statement the server counts is the key's admission or settling.
QUIET_LEDGER = "key_refresh_seconds: 60\nledger: {flush_interval: 60}\n"


def statements_run(url: str, like: str = "%") -> int:
    """Statements the server has run in the test's database (round trips: the proxy's
    connections are in autocommit, so each statement is one), this count's own excepted;
    only those whose text is `like` that pattern."""
    with psycopg.connect(url, autocommit=True) as connection:
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        except psycopg.Error:
            pytest.skip("this PostgreSQL has no pg_stat_statements module")
        return connection.execute(
            "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid "
            "FROM pg_database WHERE datname = current_database()) AND query NOT LIKE "
            "'%%pg_stat_statements%%' AND query NOT LIKE '%%pg_database%%' AND query LIKE %s",
            (like,)).fetchone()[0]


@pytest.mark.parametrize("rates", ["postgres", "redis"])
def test_a_limited_key_costs_two_round_trips_per_request(keyed, postgres_url, write_config,
                                                         rates, request):
    env = {"DATABASE_URL": postgres_url}
    if rates == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    client = keyed(env, write_config(QUIET_LEDGER))
    made = generate(client, rpm_limit=10_000, tpm_limit=10_000_000, max_budget=100.0)
    headers = bearer(made["key"])
    fresh_window(10)
    before = statements_run(postgres_url)
    for _ in range(REQUESTS):
        assert client.post("/v1/chat/completions", json=ask(), headers=headers).status_code == 200
    # One read of the key, then one statement to admit each request and one to settle it.
    assert statements_run(postgres_url) - before <= 2 * REQUESTS + 1
    info = client.get("/key/info", query_string={"key_id": made["key_id"]}, headers=ADMIN).json
    assert info["spend"] > 0


def test_under_load_a_keyed_request_costs_a_fraction_of_a_statement(keyed, postgres_url,
                                                                    write_config):
    """Requests of one key from 8 threads at once: the worker counts them by slices, each
    taken and given back in one statement, so the store sees far fewer statements than
    requests; and once the last slice is given back the spend is exact."""
    client = keyed({"DATABASE_URL": postgres_url}, write_config(QUIET_LEDGER))
    made = generate(client, rpm_limit=100_000, tpm_limit=100_000_000, max_budget=100.0)
    headers = bearer(made["key"])
    count = 200
    fresh_window(20)
    before = statements_run(postgres_url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: client.post("/v1/chat/completions", json=ask(),
                                                      headers=headers), range(count)))
    assert [r.status_code for r in replies] == [200] * count
    assert statements_run(postgres_url) - before <= count / 4
    expected = sum(float(r.headers["x-switchboard-cost"]) for r in replies)
    database = client.application.extensions["switchboard.keys"].store.db
    deadline = time.monotonic() + 2 * SLICE_SECONDS + 1.0
    while database.query("SELECT COUNT(*) FROM api_key_leases") != [(0,)]:
        assert time.monotonic() < deadline, "a slice was never given back"
        time.sleep(0.05)
    spend, reserved, in_flight, requests = database.query(
        "SELECT spend, reserved, in_flight, window_requests FROM api_keys")[0]
    assert (spend, reserved, in_flight, requests) == (pytest.approx(expected), 0.0, 0, count)


SETTLES = "%DELETE FROM api_key_leases WHERE id = ANY%"   # settling frees its requests' leases


def test_requests_finishing_together_are_settled_together(keyed, postgres_url, write_config,
                                                         openai_emu):
    """Settling waits for the store (a client's next request finds its spend counted), but
    requests finishing at the same moment share one statement: fewer than one per request,
    and nothing is lost or counted twice."""
    # The store's bound outlasts the lock this test holds on the key's row.
    client = keyed({"DATABASE_URL": postgres_url},
                   write_config(QUIET_LEDGER + "key_store_timeout: 10\n"))
    made = generate(client, rpm_limit=10_000, tpm_limit=10_000_000, max_budget=100.0)
    headers = bearer(made["key"])
    concurrency = 24
    openai_emu.fail_next(Fault(hang=1.0, times=concurrency))
    fresh_window(10)
    before, called = statements_run(postgres_url, SETTLES), len(openai_emu.calls)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        sent = [pool.submit(client.post, "/v1/chat/completions", json=ask(), headers=headers)
                for _ in range(concurrency)]
        deadline = time.monotonic() + 10
        while len(openai_emu.calls) < called + concurrency:  # all admitted, all upstream
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Another instance holds the key's row while they finish: they all wait to settle.
        with psycopg.connect(postgres_url) as other:
            other.execute("SELECT spend FROM api_keys FOR UPDATE")
            time.sleep(3.0)
        replies = [future.result() for future in sent]
    assert [r.status_code for r in replies] == [200] * concurrency
    # Fewer settling statements than requests (the key's reads and the admissions, which vary
    # with the key's refreshes, are not counted here; how many share one varies with when
    # each request's upstream answer came: 2-16 statements for these 24 requests).
    settles = statements_run(postgres_url, SETTLES) - before
    assert settles < concurrency, "each request was settled on its own"
    database = client.application.extensions["switchboard.keys"].store.db
    spend, reserved, in_flight = database.query(
        "SELECT spend, reserved, in_flight FROM api_keys")[0]
    assert spend == pytest.approx(sum(float(r.headers["x-switchboard-cost"]) for r in replies))
    assert (reserved, in_flight) == (0.0, 0)
    assert database.query("SELECT COUNT(*) FROM api_key_leases") == [(0,)]


@pytest.fixture(params=["sqlite", "postgres"])
def counted(request, keyed):
    """A proxy whose counters (budget, rpm, tpm, requests in flight) live in SQL; and a way to
    run a statement on its database, as a worker of another instance would."""
    env = {}
    if request.param == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    client = keyed(env)
    return client, client.application.extensions["switchboard.keys"].store.db


def test_the_lease_of_a_crashed_worker_lapses_and_frees_its_slot_once(counted):
    client, database = counted
    made = generate(client, max_parallel_requests=1, max_budget=1.0)
    headers = bearer(made["key"])
    stream = client.post("/chat/completions", json=ask(stream=True, max_tokens=50),
                         headers=headers, buffered=False)
    assert stream.status_code == 200
    busy = client.post("/chat/completions", json=ask(), headers=headers)
    assert busy.status_code == 429 and "max_parallel_requests" in busy.json["error"]["message"]
    # As if the stream's worker had died long ago: its lease is past its time.
    database.execute("UPDATE api_key_leases SET expires_at = 0")
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    assert b"".join(stream.response).endswith(b"data: [DONE]\n\n")
    stream.close()
    # The lapsed lease was taken off once: one request in flight is still the limit.
    again = client.post("/chat/completions", json=ask(stream=True), headers=headers,
                        buffered=False)
    assert again.status_code == 200
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 429
    b"".join(again.response)
    again.close()
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    assert database.query("SELECT in_flight, reserved FROM api_keys") == [(0, 0.0)]


def test_a_slice_whose_requests_ran_out_keeps_admitting_with_its_spend_in_the_store(counted):
    """One request after another: each answer's cost is in the key's spend when it arrives
    (written by the slice's last request in flight), while the slice stays open for the next
    request (closing it there cost a give-back and a new grant per request); what went to the
    spend left the slice's reservation, so spend plus reservations still bound the key."""
    client, database = counted
    made = generate(client, rpm_limit=100_000, tpm_limit=100_000_000, max_budget=100.0)
    headers = bearer(made["key"])
    fresh_window(10)
    spent, open_after = 0.0, 0
    for _ in range(30):
        reply = client.post("/chat/completions", json=ask(), headers=headers)
        assert reply.status_code == 200
        spent += float(reply.headers["x-switchboard-cost"])
        spend, reserved, leased, leases = database.query(
            "SELECT spend, reserved, (SELECT COALESCE(SUM(cost), 0) FROM api_key_leases), "
            "(SELECT COUNT(*) FROM api_key_leases) FROM api_keys")[0]
        assert spend == pytest.approx(spent)
        assert reserved == pytest.approx(leased, abs=1e-12)
        open_after += leases > 0
    assert open_after >= 10, "each request's slice was given back as it finished"


def test_counters_commit_without_waiting_for_the_disk_keys_wait(keyed, postgres_url):
    """On PostgreSQL a key's counters are written without waiting for the WAL to reach the
    disk (each write locks the key's row until its commit returns), its record durably."""
    keys = keyed({"DATABASE_URL": postgres_url}).application.extensions["switchboard.keys"]
    assert keys.enforcer.sql.db.query("SHOW synchronous_commit") == [("off",)]
    assert keys.store.db.query("SHOW synchronous_commit") == [("on",)]


def test_a_change_made_elsewhere_is_seen_within_the_refresh_bound(keyed, write_config):
    client = keyed(config=write_config("key_refresh_seconds: 0.5\n"))
    made = generate(client)
    headers = bearer(made["key"])
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    database = client.application.extensions["switchboard.keys"].store.db
    # Another instance sharing the database restricts the key: this one reads it again
    # within key_refresh_seconds.
    database.execute("UPDATE api_keys SET models = '[\"gpt-4o\"]'")
    deadline = time.monotonic() + 0.5 + 0.3
    while client.post("/chat/completions", json=ask(), headers=headers).status_code == 200:
        assert time.monotonic() < deadline, "the change was not seen within the bound"
        time.sleep(0.05)
    # ... and deletes it: refused within the bound too.
    database.execute("DELETE FROM api_keys")
    deadline = time.monotonic() + 0.5 + 0.3
    while client.post("/chat/completions", json=ask(model="gpt-4o"),
                      headers=headers).status_code != 401:
        assert time.monotonic() < deadline, "the deletion was not seen within the bound"
        time.sleep(0.05)


def test_a_limited_key_changed_elsewhere_is_held_to_its_new_limits_at_once(counted):
    """A limited key's admission reads its row: new limits (and a deletion) apply to the next
    request, whatever key_refresh_seconds is."""
    client, database = counted
    made = generate(client, rpm_limit=100, max_budget=1.0)
    headers = bearer(made["key"])
    fresh_window(5)
    assert client.post("/chat/completions", json=ask(), headers=headers).status_code == 200
    database.execute("UPDATE api_keys SET rpm_limit = 1, updated_at = updated_at + 1")
    refused = client.post("/chat/completions", json=ask(), headers=headers)
    assert refused.status_code == 429 and refused.json["error"]["type"] == "requests"
    assert "Limit 1," in refused.json["error"]["message"]
    database.execute("DELETE FROM api_keys")
    gone = client.post("/chat/completions", json=ask(), headers=headers)
    assert gone.status_code == 401 and gone.json["error"]["code"] == "invalid_api_key"


def redis_scripts_run(url: str) -> int:
    """Scripts Redis has run (every key admission and settling is one), by its own count."""
    import redis
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def test_with_redis_a_key_without_parallel_limit_costs_less_than_a_call_per_request(
        keyed, redis_url):
    """Without max_parallel_requests a worker counts a key's requests in Redis by slices
    (app/keys/allowance.py): requests of one key from 8 threads at once make fewer calls than
    requests. The worker that served them counts their real tokens at once, every instance
    once their slice is given back."""
    first, second = keyed({"REDIS_URL": redis_url}), keyed({"REDIS_URL": redis_url})
    made = generate(first, rpm_limit=100_000, tpm_limit=100_000)
    headers = bearer(made["key"])
    count = 100
    fresh_window(10)
    before = redis_scripts_run(redis_url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: first.post(
            "/v1/chat/completions", json=ask("one two three"), headers=headers), range(count)))
    assert [reply.status_code for reply in replies] == [200] * count
    used = sum(reply.json["usage"]["total_tokens"] for reply in replies)
    assert redis_scripts_run(redis_url) - before < count / 2
    expected = str(100_000 - used)
    assert first.get("/v1/models", headers=headers).headers[
        "x-ratelimit-remaining-tokens"] == expected
    deadline = time.monotonic() + 2 * SLICE_SECONDS + CORRECTION_SECONDS + 0.5
    while second.get("/v1/models", headers=headers).headers[
            "x-ratelimit-remaining-tokens"] != expected:
        assert time.monotonic() < deadline, "the real token count never reached Redis"
        time.sleep(0.05)


def test_a_key_change_reaches_every_worker_without_a_syscall_per_request(tmp_path, monkeypatch):
    """Two workers' key caches on one instance: a change made through one ends the other's
    freshness at its next request, which learns it from a mapped file (a stat per request
    released the GIL, and a keyed request then waited for it under load) and finds its key
    without hashing it (the hash cost more than the look-up)."""
    import hashlib
    import os

    from app.keys import availability
    from app.keys.availability import KeyCache
    from app.keys.store import KeyRecord

    first, second = (KeyCache(60, tmp_path / "key-cache", fresh_seconds=60) for _ in range(2))
    key, token = KeyRecord(id="k1"), "sk-sb-token"
    second.verified(token, key, time.time())
    assert second.fresh(token) == key
    stats = []
    original_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **kw: stats.append(a) or original_stat(*a, **kw))
    monkeypatch.setattr(availability.hashlib, "sha256",
                        lambda *a: stats.append(a) or hashlib.new("sha256", *a))
    for _ in range(5):
        assert second.fresh(token) == key
    assert stats == []
    time.sleep(0.01)
    first.changed()
    assert second.fresh(token) is None
    second.verified(token, key, time.time())
    assert second.fresh(token) == key
