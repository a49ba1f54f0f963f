"""The proxy's stores locked by another session (a slow migration, a long transaction) on a
real PostgreSQL. Virtual keys while the key store cannot be used (its table locked by a long transaction,
on a real PostgreSQL): bounded waits, recently verified keys keep working within their
budget, unknown keys get 503 key_store_unavailable at once (and a ledger row), readiness
names the key store (and the ledger), and service resumes within a second of the store's
return."""
from __future__ import annotations

import os
import signal
import time
import uuid

import psycopg
import pytest

from app.api.auth import EXTENSION as KEYS
from tests.keys_fixtures import ADMIN, ask, bearer, generate
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)
from tests.servers import _stop, start_redis

CONFIG = "key_store_timeout: 0.5\nkey_cache_seconds: 60\n"


@pytest.fixture
def store(keyed, postgres_url, write_config):
    client = keyed({"DATABASE_URL": postgres_url}, write_config(CONFIG))
    return client, postgres_url


class TableLock:
    """A table locked by another session, as a slow migration would."""

    def __init__(self, url: str, table: str = "api_keys"):
        self.connection = psycopg.connect(url)
        self.connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        self.connection.rollback()
        self.connection.close()


def timed_ask(client, key: str, request_id: str | None = None):
    started = time.monotonic()
    response = client.post("/v1/chat/completions", json=ask(),
                           headers={**bearer(key), "x-request-id": request_id or uuid.uuid4().hex})
    return response, time.monotonic() - started


def test_known_keys_work_and_unknown_keys_are_refused_at_once(store):
    client, url = store
    known = generate(client)["key"]
    stranger = generate(client)["key"]           # valid, but never used through this proxy
    assert timed_ask(client, known)[0].status_code == 200

    lock = TableLock(url)
    try:
        first, waited = timed_ask(client, known)
        assert first.status_code == 200 and waited < 1.5   # one bounded wait (0.5 s), then cache
        # A known key's request may not touch the store at all (its worker counts it on a
        # slice): the outage is noticed by the first wait that meets it, the key's refresh
        # or its slice given back in the background, within the store's bound.
        deadline = time.monotonic() + 2.0
        while client.application.extensions[KEYS].guard.up:
            assert time.monotonic() < deadline, "the outage was never noticed"
            assert timed_ask(client, known)[0].status_code == 200
            time.sleep(0.05)
        for _ in range(5):
            response, waited = timed_ask(client, known)
            assert response.status_code == 200 and waited < 0.3
        refused, waited = timed_ask(client, stranger, "refused-503")
        assert refused.status_code == 503 and waited < 0.3
        assert refused.json["error"]["code"] == "key_store_unavailable"
        ready = client.get("/health/readiness")
        assert ready.status_code == 503 and ready.json["checks"]["key_store"] == "unavailable"
        assert ready.json["checks"]["ledger"] == "ok"
    finally:
        lock.release()

    deadline = time.monotonic() + 1.0                  # recovery within a second
    while timed_ask(client, stranger)[0].status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert client.get("/health/readiness").status_code == 200
    rows = client.get("/spend/logs", query_string={"status": 503}, headers=ADMIN).json["data"]
    assert "refused-503" in [row["request_id"] for row in rows]
    assert {row["error_code"] for row in rows} == {"key_store_unavailable"}


def test_budget_holds_during_an_outage_and_spend_is_settled_after(store):
    client, url = store
    made = generate(client, max_budget=0.0000001)     # one request spends more than this
    key, key_id = made["key"], made["key_id"]
    bad = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini"}, headers=bearer(key))
    assert bad.status_code == 400                       # verified (spend 0), nothing spent
    lock = TableLock(url)
    try:
        assert timed_ask(client, key)[0].status_code == 200    # last known spend 0: admitted
        over, waited = timed_ask(client, key)                  # this instance has spent since
        assert over.status_code == 429 and waited < 0.3
        assert over.json["error"]["code"] == "budget_exceeded"
    finally:
        lock.release()
    deadline = time.monotonic() + 2.0
    while client.get("/key/info", query_string={"key_id": key_id},
                     headers=ADMIN).json["spend"] == 0:
        assert time.monotonic() < deadline, "spend made during the outage was never settled"
        time.sleep(0.05)


def test_a_revoked_key_is_not_served_from_the_cache(store):
    client, url = store
    made = generate(client)
    assert timed_ask(client, made["key"])[0].status_code == 200
    assert client.post("/key/delete", json={"key_ids": [made["key_id"]]},
                       headers=ADMIN).status_code == 200
    assert timed_ask(client, made["key"])[0].status_code == 401   # at once, the store is up
    lock = TableLock(url)
    try:
        assert timed_ask(client, made["key"])[0].status_code == 503
    finally:
        lock.release()


def test_readiness_names_a_ledger_it_cannot_use(store):
    client, url = store
    assert client.get("/health/readiness").status_code == 200
    lock = TableLock(url, "ledger")
    try:
        started = time.monotonic()
        ready = client.get("/health/readiness")
        assert ready.status_code == 503 and time.monotonic() - started < 3
        assert ready.json["checks"]["ledger"] == "unavailable"
        assert client.get("/health").status_code == 200        # liveness is not readiness
    finally:
        lock.release()
    assert client.get("/health/readiness").status_code == 200



def test_readiness_asks_its_parts_at_once_within_a_probes_time(keyed, postgres_url,
                                                                write_config):
    """The ledger (1 s) and the key store (2 s by default) both held by a lock: readiness
    names both within about a second, as an orchestrator's probe waits, not 3 s in turn."""
    client = keyed({"DATABASE_URL": postgres_url}, write_config("key_cache_seconds: 60\n"))
    assert client.get("/health/readiness").status_code == 200
    lock = TableLock(postgres_url, "api_keys, ledger")
    try:
        started = time.monotonic()
        ready = client.get("/health/readiness")
        waited = time.monotonic() - started
    finally:
        lock.release()
    assert ready.status_code == 503
    assert ready.json["checks"]["ledger"] == ready.json["checks"]["key_store"] == "unavailable"
    assert waited < 1.0 + 0.6, waited
    assert client.get("/health/readiness").status_code == 200


def test_a_request_waits_on_the_key_store_no_longer_than_its_own_timeout(keyed, postgres_url,
                                                                         write_config):
    """The store's own bound is 2 s (the default); a request's `timeout: 1` cuts it to 1 s.
    Authentication still answers before the body is judged: a bad key with a bad body is
    a 401."""
    client = keyed({"DATABASE_URL": postgres_url}, write_config("key_cache_seconds: 60\n"))
    known, stranger = generate(client)["key"], generate(client)["key"]
    assert timed_ask(client, known)[0].status_code == 200
    hurried = {**ask(), "timeout": 1}
    lock = TableLock(postgres_url)
    try:
        for key, status in ((known, 200), (stranger, 503)):
            started = time.monotonic()
            response = client.post("/v1/chat/completions", json=hurried, headers=bearer(key))
            assert response.status_code == status, response.json
            assert time.monotonic() - started < 1.0 + 0.5
    finally:
        lock.release()
    deadline = time.monotonic() + 1.0                  # the store is back within a second
    while timed_ask(client, stranger)[0].status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    wrong = client.post("/v1/chat/completions", data=b'{"model": ', headers={
        **bearer("sk-sb-" + "x" * 40), "Content-Type": "application/json"})
    assert wrong.status_code == 401, wrong.json
    bad_body = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "timeout": 1},
                           headers=bearer(known))
    assert bad_body.status_code == 400 and bad_body.json["error"]["param"] == "messages"

def test_a_requests_own_timeout_leaves_the_store_in_use_for_every_other_request(
        keyed, postgres_url, write_config):
    """A store wait ended by the request's own short timeout says nothing of the store: other
    requests go on using it (unknown keys are not refused for the next moments), and the
    spend the hurried request could not settle is settled in the background."""
    client = keyed({"DATABASE_URL": postgres_url}, write_config("key_cache_seconds: 60\n"))
    known = generate(client)
    stranger = generate(client)["key"]
    assert timed_ask(client, known["key"])[0].status_code == 200
    spent = client.get("/key/info", query_string={"key_id": known["key_id"]},
                       headers=ADMIN).json["spend"]
    guard = client.application.extensions[KEYS].guard
    hurried = {**ask(), "timeout": 1}
    lock = TableLock(postgres_url)
    try:
        refused = client.post("/v1/chat/completions", json=hurried, headers=bearer(stranger))
        served = client.post("/v1/chat/completions", json=hurried, headers=bearer(known["key"]))
        assert (refused.status_code, served.status_code) == (503, 200)
        assert guard.up, "one request's own timeout took the key store out of use for all"
    finally:
        lock.release()
    deadline = time.monotonic() + 3.0
    while client.get("/key/info", query_string={"key_id": known["key_id"]},
                     headers=ADMIN).json["spend"] <= spent:
        assert time.monotonic() < deadline, "the hurried request's spend was never settled"
        time.sleep(0.05)


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, to freeze."""
    process, url = start_redis(tmp_path)
    yield process, url
    os.kill(process.pid, signal.SIGCONT)
    _stop(process)


def test_a_frozen_redis_costs_requests_no_wait(keyed, own_redis, write_config):
    process, url = own_redis
    client = keyed({"REDIS_URL": url}, write_config(
        "cache: {enabled: true, backend: redis}\nnum_retries: 0\n"))
    key = generate(client, rpm_limit=1000)["key"]

    def remaining(text: str) -> tuple[int, float]:
        started = time.monotonic()
        response = client.post("/v1/chat/completions", json=ask(text), headers=bearer(key))
        assert response.status_code == 200
        return int(response.headers.get("x-ratelimit-remaining-requests", -1)), \
            time.monotonic() - started

    assert remaining("warm")[0] == 999                  # counted in Redis
    os.kill(process.pid, signal.SIGSTOP)
    waits = [remaining(f"frozen {n}")[1] for n in range(20)]
    # one call waits redis_timeout (50 ms) and trips the breaker: the rest do not wait
    assert max(waits) < 0.5 and sorted(waits)[-3] < 0.15, waits
    os.kill(process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 3.0                   # Redis in use again
    while remaining("back")[0] in (-1, 1000):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_key_verified_by_one_worker_works_in_the_others(store, keyed, write_config):
    client, url = store
    other_worker = keyed({"DATABASE_URL": url}, write_config(CONFIG))   # same data folder
    key = generate(client)["key"]
    assert timed_ask(client, key)[0].status_code == 200
    lock = TableLock(url)
    try:
        assert timed_ask(other_worker, key)[0].status_code == 200
    finally:
        lock.release()
