"""A gevent worker's hub is never held up by the proxy's own storage: the ledger's batch insert,
the journal's fsync and its deletes, and the disk cache's writes (which may wait for SQLite's
write lock) run on native threads (app/offload.py), so the worker's other requests go on
meanwhile. gevent's own monitor thread (GEVENT_MONITOR_THREAD_ENABLE) reports
every stretch the hub stayed blocked longer than GEVENT_MAX_BLOCKING_TIME, with the stack
that held it; on a busy machine it also reports stretches where the OS ran something else,
wherever the worker happened to be, so only the ledger's insert is looked for."""
from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import urllib3

from bench.hubwatch import blocked_stacks

ROWS = 60
MESSAGE = "a long prompt " * 8_000   # ~110 KB a row (messages are stored): batches of MBs


def test_ledger_batches_never_block_the_hub(start_gunicorn, provider_env, write_config):
    env = {**provider_env, "WEB_CONCURRENCY": "1",
           "GEVENT_MONITOR_THREAD_ENABLE": "1", "GEVENT_MAX_BLOCKING_TIME": "0.02",
           # one batch of every row, written when /spend below flushes it
           "SWITCHBOARD_CONFIG": write_config("ledger: {store_messages: true, flush_interval: 30}")}
    proxy = start_gunicorn(env)
    http = urllib3.PoolManager()
    for n in range(ROWS):
        reply = http.request("POST", f"{proxy.base_url}/v1/chat/completions", timeout=10, json={
            "model": "gpt-4", "messages": [{"role": "user", "content": f"{n} {MESSAGE}"}]})
        assert reply.status == 200, reply.data[:300]
    totals = http.request("GET", f"{proxy.base_url}/spend", timeout=30).json()
    assert totals["requests"] == ROWS
    proxy.stop()

    inserts = [stack for stack in blocked_stacks(proxy.log()) if ", in _insert\n" in stack]
    assert not inserts, inserts[0]


def test_a_cache_write_waiting_for_the_lock_never_holds_the_worker(start_gunicorn, provider_env,
                                                                  write_config, tmp_path):
    config = write_config(f"cache: {{enabled: true, mode: exact, dir: {tmp_path / 'cache'}}}")
    proxy = start_gunicorn({**provider_env, "WEB_CONCURRENCY": "1", "SWITCHBOARD_CONFIG": config})
    http = urllib3.PoolManager()

    def ask(text: str) -> urllib3.BaseHTTPResponse:
        return http.request("POST", f"{proxy.base_url}/v1/chat/completions", timeout=30, json={
            "model": "gpt-4", "messages": [{"role": "user", "content": text}]})

    assert ask("opens the cache").status == 200
    # Another process holds the entries' write lock: storing the next answer waits for it
    # (up to the cache's 1 s lock timeout, then gives up).
    holder = sqlite3.connect(tmp_path / "cache" / "entries" / "cache.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waits = []
    try:
        with ThreadPoolExecutor(1) as pool:
            miss = pool.submit(ask, "a question not cached yet")
            deadline = time.monotonic() + 1.2
            while time.monotonic() < deadline:
                started = time.monotonic()
                assert http.request("GET", f"{proxy.base_url}/health", timeout=5).status == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.05)
            assert miss.result().status == 200
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert max(waits) < 0.8, waits   # the worker froze for the lock timeout (1 s) before
