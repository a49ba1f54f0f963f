"""CPU per upstream call of the HTTP clients the proxy could use, against the mock upstream:
Switchboard's Transport (libcurl), urllib3's PoolManager and a requests Session, each on
keep-alive connections, interleaved over REPEATS rounds; medians and ratios to Transport.

    .venv/bin/python bench/clients.py http://127.0.0.1:PORT/v1/chat/completions [calls] [repeats]
(`bench/clients.sh` starts the mock and runs this.)
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import requests
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.jsonfast import dumps  # noqa: E402
from app.providers.base import UpstreamRequest  # noqa: E402
from app.service.transport import Transport  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]}
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}


def clients(url: str) -> dict:
    transport, pool, session = Transport(), urllib3.PoolManager(retries=False), requests.Session()
    request = UpstreamRequest("POST", url, HEADERS, BODY)
    timeout = urllib3.Timeout(connect=10, read=600)

    def with_transport():
        assert transport.send(request, 600).status == 200

    def with_urllib3():
        response = pool.request("POST", url, body=dumps(BODY), headers=HEADERS, timeout=timeout,
                                redirect=False)
        assert response.status == 200 and response.data

    def with_requests():
        response = session.post(url, data=dumps(BODY), headers=HEADERS, timeout=(10, 600))
        assert response.status_code == 200 and response.content

    return {"switchboard Transport (pycurl)": with_transport, "urllib3 PoolManager": with_urllib3,
            "requests Session": with_requests}


def cpu_per_call(call, count: int) -> float:
    for _ in range(min(200, count)):
        call()
    started = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    url = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    candidates = clients(url)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, call in candidates.items():
            samples[name].append(cpu_per_call(call, count))
    base = statistics.median(samples["switchboard Transport (pycurl)"])
    print(f"| client | CPU us / call (median of {repeats} x {count}) | vs Transport |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
