"""Nothing is lost across workers and restarts: concurrent requests through two gunicorn
workers, a graceful reload (SIGHUP) and a stop (SIGTERM), then exactly one ledger row per
request, with the tokens and cost the responses reported."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import urllib3

from tests.test_ledger import ledger_env  # noqa: F401  (fixture)

THREADS = 12


def sdk(proxy, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused", max_retries=retries)


def one_request(client: openai.OpenAI, n: int) -> tuple[int, int, Decimal]:
    """(prompt tokens, completion tokens, cost) as the response told the client."""
    messages = [{"role": "user", "content": f"request number {n}"}]
    if n % 3 == 0:
        chunks = list(client.chat.completions.create(
            model="gpt-4", messages=messages, stream=True, user=f"user-{n % 4}",
            stream_options={"include_usage": True}))
        usage = chunks[-1].usage
        return usage.prompt_tokens, usage.completion_tokens, Decimal(repr(usage.cost))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4", messages=messages,
                                                           user=f"user-{n % 4}")
    usage = raw.parse().usage
    return usage.prompt_tokens, usage.completion_tokens, Decimal(raw.headers["x-switchboard-cost"])


def run(proxy, numbers, retries: int = 0) -> list[tuple[int, int, Decimal]]:
    client = sdk(proxy, retries)
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda n: one_request(client, n), numbers))


def spend_when(proxy, requests: int, limit: float = 30.0) -> dict:
    """/spend once it counts `requests` rows (old workers flush as they exit), bounded."""
    deadline = time.monotonic() + limit
    while True:
        totals = urllib3.request("GET", f"{proxy.base_url}/spend", timeout=10).json()
        if totals["requests"] >= requests or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def assert_ledger_matches(totals: dict, answers) -> None:
    assert totals["requests"] == len(answers) and totals["errors"] == 0
    assert totals["prompt_tokens"] == sum(a[0] for a in answers)
    assert totals["completion_tokens"] == sum(a[1] for a in answers)
    expected = sum(a[2] for a in answers)
    assert abs(Decimal(repr(totals["cost"])) - expected) < Decimal("1e-9"), (totals, expected)


def test_concurrent_requests_survive_reload_and_stop(start_gunicorn, provider_env, write_config,
                                                      ledger_env):  # noqa: F811
    # Rows wait in the queue (30 s interval) until a worker exits: only the flush on exit
    # can have written them.
    env = {**provider_env, **ledger_env,
           "SWITCHBOARD_CONFIG": write_config("ledger: {flush_interval: 30}")}
    proxy = start_gunicorn(env)
    first = run(proxy, range(60))
    os.kill(proxy.process.pid, signal.SIGHUP)      # graceful reload: new workers, old ones exit
    assert_ledger_matches(spend_when(proxy, 60), first)

    # Just after a reload a new connection can still be reset (one the kernel queued on a
    # listener an old worker was closing, with SO_REUSEPORT): retried, as clients do by
    # default. A retry of a request that was served would show as a row too many.
    second = run(proxy, range(60, 100), retries=2)
    proxy.stop()                                   # SIGTERM: every worker flushes and exits
    restarted = start_gunicorn(env)
    assert_ledger_matches(spend_when(restarted, 100, limit=5), first + second)
    users = urllib3.request("GET", f"{restarted.base_url}/spend/users").json()["data"]
    assert sorted(u["user"] for u in users) == ["user-0", "user-1", "user-2", "user-3"]
    assert sum(u["requests"] for u in users) == 100
