"""A gevent worker's hub is never held up by the ledger's writes: the batch insert, the
journal's fsync and its deletes run on a native thread (app/offload.py), so the worker's other
requests go on meanwhile. gevent's own monitor thread (GEVENT_MONITOR_THREAD_ENABLE) reports
every stretch the hub stayed blocked longer than GEVENT_MAX_BLOCKING_TIME, with the stack
that held it; on a busy machine it also reports stretches where the OS ran something else,
wherever the worker happened to be, so only the ledger's insert is looked for."""
from __future__ import annotations

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
