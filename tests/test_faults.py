"""The proxy's own parts failing under load, through real gunicorn: PostgreSQL stopped and
restarted, a worker SIGKILLed, the master SIGTERMed, the data folder read-only for a
moment. Checked by x-request-id: every answered request has exactly one ledger row, no
request waited beyond its bound, and recovery comes within the documented figures.

The short faults run in the normal suite; SWITCHBOARD_LONG_FAULTS=1 runs them longer (a
PostgreSQL outage of 30 s, more load, nine graceful stops).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import urllib3

from tests.emulators.server import Fault
from tests.servers import (fresh_postgres_database, postmaster_pid, run_postgres, start_postgres,
                           stop_postgres)

LONG = os.environ.get("SWITCHBOARD_LONG_FAULTS") == "1"
MASTER = "sb-master-faults-0123456789"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
KEY_STORE_BOUND = 2.0          # key_store_timeout's default
UPSTREAM_SECONDS = 0.05        # each emulated answer takes this long
SLACK = 1.0                    # a loaded 2-core machine: scheduling, gunicorn, the emulator


@dataclass
class Load:
    """Requests sent by a few threads until stopped (bounded in count and time), each with its
    own x-request-id, remembering how each ended."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    threads: int = 4
    limit: int = 3000
    results: dict[str, tuple[int | None, float, str]] = field(default_factory=dict)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]

    def __enter__(self) -> "Load":
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self) -> None:
        http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=30))
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.results) >= self.limit:
                    return
            request_id = uuid.uuid4().hex
            started = time.monotonic()
            try:
                response = http.request(
                    "POST", f"{self.url}/v1/chat/completions",
                    headers={**self.headers, "x-request-id": request_id,
                             "Content-Type": "application/json"},
                    body=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", '
                         b'"content": "hi"}]}')
                outcome = (response.status, time.monotonic() - started,
                           response.data.decode(errors="replace")[:300])
            except urllib3.exceptions.HTTPError as exc:   # refused or cut: never answered
                outcome = (None, time.monotonic() - started, type(exc).__name__)
                time.sleep(0.05)
            with self._lock:
                self.results[request_id] = outcome

    def answered(self) -> list[str]:
        return [rid for rid, (status, _, _) in self.results.items() if status is not None]

    def statuses(self) -> set:
        return {status for status, _, _ in self.results.values()}


def warm(proxy, headers: dict[str, str] | None = None) -> None:
    """One request before the load: the emulator reads the provider's contract on its first
    call (seconds, in the test process), which must not count as the proxy's wait."""
    answer = urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions",
                             headers=headers or {}, json={"model": "gpt-4o-mini", "messages": [
                                 {"role": "user", "content": "warm"}]}, timeout=60)
    assert answer.status == 200, answer.data


def wait_rows(count_rows, request_ids: list[str], limit: float) -> dict[str, int]:
    """Ledger rows per request id, once every id has one (or the limit has passed)."""
    deadline = time.monotonic() + limit
    while True:
        counts = count_rows()
        if all(counts.get(rid) for rid in request_ids) or time.monotonic() > deadline:
            return counts
        time.sleep(0.25)


def assert_one_row_each(counts: dict[str, int], request_ids: list[str]) -> None:
    missing = [rid for rid in request_ids if not counts.get(rid)]
    assert not missing, f"{len(missing)} of {len(request_ids)} answered requests have no row"
    doubled = {rid: n for rid, n in counts.items() if n > 1}
    assert not doubled, f"requests counted twice: {doubled}"


def sqlite_counts(data_dir: Path):
    def count() -> dict[str, int]:
        try:
            with sqlite3.connect(data_dir / "switchboard.db", timeout=5) as db:
                return dict(db.execute("SELECT request_id, COUNT(*) FROM ledger "
                                       "GROUP BY request_id").fetchall())
        except sqlite3.Error:
            return {}
    return count


def postgres_counts(url: str):
    def count() -> dict[str, int]:
        try:
            with psycopg.connect(url, connect_timeout=2) as db:
                return dict(db.execute("SELECT request_id, COUNT(*) FROM ledger "
                                       "GROUP BY request_id").fetchall())
        except psycopg.Error:
            return {}
    return count


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture
def slow_upstream(openai_emu):
    openai_emu.fail_next(Fault(hang=UPSTREAM_SECONDS, times=10 ** 6))
    yield openai_emu
    openai_emu.reset_state()


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, to stop and restart."""
    process, url, workdir = start_postgres()
    server = {"process": process, "url": url, "workdir": workdir,
              "port": int(url.rsplit(":", 1)[1])}
    yield server
    stop_postgres(server["process"], workdir)   # fast: the proxy may still be connected


def test_postgres_stopped_and_restarted(start_gunicorn, provider_env, slow_upstream,
                                        own_postgres):
    database = fresh_postgres_database(own_postgres["url"])
    proxy = start_gunicorn({**provider_env, "DATABASE_URL": database,
                            "SWITCHBOARD_MASTER_KEY": MASTER})
    http = urllib3.PoolManager(retries=False)

    def new_key() -> str:
        made = http.request("POST", f"{proxy.base_url}/key/generate", json={}, headers=ADMIN)
        assert made.status == 200, made.data
        return made.json()["key"]

    key, stranger = new_key(), new_key()
    warm(proxy, {"Authorization": f"Bearer {key}"})
    down_for = 30.0 if LONG else 4.0
    with Load(proxy.base_url, {"Authorization": f"Bearer {key}"}, threads=6) as load:
        time.sleep(1.5)                          # both workers verify the key
        os.kill(postmaster_pid(own_postgres["workdir"]), signal.SIGINT)   # fast: sessions cut
        own_postgres["process"].wait(30)
        stopped = time.monotonic()
        time.sleep(down_for / 2)
        ready = http.request("GET", f"{proxy.base_url}/health/readiness", timeout=10)
        refused = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                               headers={"Authorization": f"Bearer {stranger}",
                                        "x-request-id": "stranger-during-outage"},
                               json={"model": "gpt-4o-mini", "messages": [
                                   {"role": "user", "content": "hi"}]}, timeout=10)
        time.sleep(max(0.0, down_for - (time.monotonic() - stopped)))
        own_postgres["process"] = run_postgres(own_postgres["workdir"], own_postgres["port"])
        back = time.monotonic()
        while True:                              # a key never seen works once the store is back
            answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                                  headers={"Authorization": f"Bearer {stranger}"},
                                  json={"model": "gpt-4o-mini", "messages": [
                                      {"role": "user", "content": "hi"}]}, timeout=10)
            if answer.status == 200:
                recovered = time.monotonic() - back
                break
            assert time.monotonic() - back < 10, answer.data
            time.sleep(0.05)
        time.sleep(1.0)

    assert ready.status == 503 and ready.json()["checks"]["ledger"] == "unavailable"
    assert ready.json()["checks"]["key_store"] == "unavailable"
    assert refused.status == 503 and refused.json()["error"]["code"] == "key_store_unavailable"
    assert recovered < 1.0 + SLACK, recovered
    assert load.statuses() <= {200, 503}, load.statuses()
    slowest = max(seconds for _, seconds, _ in load.results.values())
    assert slowest < KEY_STORE_BOUND + UPSTREAM_SECONDS + SLACK, slowest
    answered = load.answered() + ["stranger-during-outage"]
    counts = wait_rows(postgres_counts(database), answered, limit=30)
    assert_one_row_each(counts, answered)


@pytest.mark.parametrize("victim", ["worker", "instance"])
def test_sigkill_loses_no_row(start_gunicorn, provider_env, slow_upstream, write_config,
                              tmp_path, victim):
    """One worker killed (gunicorn starts another, which replays its journal), or the whole
    instance (the next start replays every journal). Rows stay in memory for 60 s, so only
    a journal can bring them back."""
    env = {**provider_env, "SWITCHBOARD_CONFIG": write_config("ledger: {flush_interval: 60}")}
    proxy = start_gunicorn(env)
    warm(proxy)
    with Load(proxy.base_url, threads=6) as load:
        time.sleep(2.0 if LONG else 1.0)
        if victim == "worker":
            os.kill(worker_pids(proxy.process.pid)[0], signal.SIGKILL)
            time.sleep(2.0 if LONG else 1.0)
        else:
            os.killpg(proxy.process.pid, signal.SIGKILL)
            proxy.process.wait(10)
    answered = load.answered()
    assert len(answered) > 10 and load.statuses() <= {200, None}
    if victim == "worker":
        proxy.stop()                             # the other worker flushes on a graceful stop
    else:
        start_gunicorn(env)
    counts = wait_rows(sqlite_counts(tmp_path / "data"), answered, limit=20)
    assert_one_row_each(counts, answered)


@pytest.mark.parametrize("stop", range(9 if LONG else 1))
def test_sigterm_fails_no_request(start_gunicorn, provider_env, openai_emu, tmp_path, stop):
    openai_emu.fail_next(Fault(hang=0.3, times=10 ** 6))   # requests in flight at the stop
    proxy = start_gunicorn(provider_env)
    warm(proxy)
    with Load(proxy.base_url, threads=8) as load:
        time.sleep(1.0 + stop * 0.1)
        os.kill(proxy.process.pid, signal.SIGTERM)
        proxy.process.wait(30)
    openai_emu.reset_state()
    failed = {rid: result for rid, result in load.results.items()
              if result[0] not in (200, None)}
    assert not failed, failed
    answered = load.answered()
    counts = wait_rows(sqlite_counts(tmp_path / "data"), answered, limit=5)
    assert_one_row_each(counts, answered)


def test_a_read_only_data_folder_loses_no_row(start_gunicorn, provider_env, slow_upstream,
                                              tmp_path):
    """As root, gunicorn runs without the capabilities that ignore file permissions."""
    data = tmp_path / "data"
    prefix = (("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
              if os.geteuid() == 0 else ())
    config = tmp_path / "ledger.yaml"
    config.write_text("ledger: {flush_interval: 0.1}\n")
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": str(config)}, prefix)
    warm(proxy)

    def chmod_all(file_mode: int, folder_mode: int) -> None:
        for path in [data, *data.rglob("*")]:
            with contextlib.suppress(FileNotFoundError):  # a journal drained since the listing
                path.chmod(folder_mode if path.is_dir() else file_mode)

    with Load(proxy.base_url, threads=4) as load:
        time.sleep(1.0)
        chmod_all(0o444, 0o555)
        time.sleep(5.0 if LONG else 2.0)
        chmod_all(0o644, 0o755)
        time.sleep(1.0)
    answered = load.answered()
    assert load.statuses() == {200}
    counts = wait_rows(sqlite_counts(data), answered, limit=20)
    assert_one_row_each(counts, answered)


def postgres_family(server: dict) -> list[int]:
    """The postmaster and every server process it started (the sessions' backends)."""
    family = [postmaster_pid(server["workdir"])]
    for pid in family:
        family += [int(child) for child in
                   Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return family


def test_a_frozen_postgres_is_waited_on_no_longer_than_the_bound(own_postgres, start_gunicorn,
                                                                 provider_env, slow_upstream,
                                                                 worker_class):
    """SIGSTOP: the server's kernel keeps ACKing and its own timeouts never fire, so only the
    proxy's side can end a wait. Verified keys keep working from the key cache, a key never
    seen gets 503 at once, and every answered request has its row after SIGCONT. (The proxy
    is stopped before its PostgreSQL: own_postgres comes first.)"""
    database = fresh_postgres_database(own_postgres["url"])
    proxy = start_gunicorn({**provider_env, "DATABASE_URL": database,
                            "SWITCHBOARD_MASTER_KEY": MASTER,
                            "SWITCHBOARD_WORKER_CLASS": worker_class})
    http = urllib3.PoolManager(retries=False)

    def ask(key: str, request_id: str | None = None):
        return http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                            headers={"Authorization": f"Bearer {key}",
                                     "x-request-id": request_id or uuid.uuid4().hex},
                            json={"model": "gpt-4o-mini", "messages": [
                                {"role": "user", "content": "hi"}]}, timeout=15)

    key, stranger = (http.request("POST", f"{proxy.base_url}/key/generate", json={},
                                  headers=ADMIN).json()["key"] for _ in range(2))
    warm(proxy, {"Authorization": f"Bearer {key}"})
    frozen_for = 20.0 if LONG else 4.0
    with Load(proxy.base_url, {"Authorization": f"Bearer {key}"}, threads=4) as load:
        time.sleep(1.5)                          # both workers verify the key
        frozen = postgres_family(own_postgres)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(frozen_for / 2)
            started = time.monotonic()
            refused = ask(stranger, "stranger-while-frozen")
            refused_after = time.monotonic() - started
            time.sleep(frozen_for / 2)
        finally:
            # runuser (as root) stops itself when its child stops: it must go on to reap it
            for pid in [*frozen, own_postgres["process"].pid]:
                os.kill(pid, signal.SIGCONT)
        thawed = time.monotonic()
        while ask(stranger).status != 200:       # a key never seen works once the store is back
            assert time.monotonic() - thawed < 1.0 + SLACK
            time.sleep(0.05)
        time.sleep(0.5)

    assert refused.status == 503 and refused.json()["error"]["code"] == "key_store_unavailable"
    assert refused_after < KEY_STORE_BOUND + SLACK, refused_after
    assert load.statuses() == {200}, load.statuses()
    slowest = max(seconds for _, seconds, _ in load.results.values())
    assert slowest < KEY_STORE_BOUND + UPSTREAM_SECONDS + SLACK, slowest
    answered = load.answered() + ["stranger-while-frozen"]
    counts = wait_rows(postgres_counts(database), answered, limit=30)
    assert_one_row_each(counts, answered)
