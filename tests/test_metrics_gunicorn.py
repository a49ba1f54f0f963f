"""GET /metrics under real gunicorn with 2 workers: every worker's counts are in the totals,
whichever worker answers the scrape, and a stopped worker's counts stay in them."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from tests.capture import CaptureServer, HELICONE_KEY

SERVED = ("switchboard_requests_total", (("model", "gpt-4"), ("provider", "openai"),
                                         ("status", "200")))
SENT = ("switchboard_callback_events_total", (("integration", "helicone"), ("outcome", "sent")))


def scrape(base_url: str) -> dict:
    reply = urllib3.request("GET", f"{base_url}/metrics", headers={"Connection": "close"})
    assert reply.status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.data.decode())
            for s in family.samples}


def workers_of(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def two_workers(master: int, without: int | None = None) -> set[int]:
    """The master's two workers, once both run (and `without` is gone)."""
    deadline = time.monotonic() + 15
    while True:
        workers = workers_of(master)
        if len(workers) == 2 and without not in workers:
            return workers
        assert time.monotonic() < deadline, f"workers: {workers}"
        time.sleep(0.05)


def chat(base_url: str, n: int) -> int:
    """One request on its own connection, so the kernel may hand it to either worker."""
    return urllib3.request("POST", f"{base_url}/v1/chat/completions",
                           json={"model": "gpt-4", "messages": [{"role": "user",
                                                                 "content": f"n{n}"}]},
                           headers={"Connection": "close"}, retries=False).status


def test_counts_from_both_workers(start_gunicorn, provider_env, openai_emu, write_config,
                                  tmp_path):
    helicone = CaptureServer().start()
    config = write_config("callbacks: {success: [helicone], timeout: 2}\n")
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": config, "TMPDIR": str(tmp_path),
                            "HELICONE_API_KEY": HELICONE_KEY, "HELICONE_API_BASE": helicone.url})
    try:
        [metrics_dir] = tmp_path.glob("switchboard-metrics-*")  # made by gunicorn.conf.py
        workers = two_workers(proxy.process.pid)
        served_by = lambda: {pid for pid in workers  # noqa: E731
                             if (metrics_dir / f"counter_{pid}.db").exists()}
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while served_by() != workers and sent < 400:  # bounded: the kernel spreads them
                assert set(pool.map(lambda n: chat(proxy.base_url, n),
                                    range(sent, sent + 16))) == {200}
                sent += 16
        assert served_by() == workers, "one worker served every request"
        for _ in range(4):  # each scrape is answered by either worker: all say the same
            assert scrape(proxy.base_url)[SERVED] == sent
        deadline = time.monotonic() + 10
        while scrape(proxy.base_url).get(SENT, 0) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scrape(proxy.base_url)[SENT] == sent
        assert len(helicone.requests) == sent

        stopped = min(workers)
        os.kill(stopped, signal.SIGTERM)  # gunicorn replaces it; child_exit runs in the master
        two_workers(proxy.process.pid, without=stopped)
        assert not (metrics_dir / f"gauge_livesum_{stopped}.db").exists()
        assert scrape(proxy.base_url)[SERVED] == sent  # its counts are still in the totals
    finally:
        proxy.stop()
        helicone.stop()
    assert not metrics_dir.exists()  # the temporary folder goes with gunicorn
