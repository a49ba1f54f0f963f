"""Under real gunicorn: client disconnects free the upstream, and many streams at once."""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from tests.emulators.server import Fault, Reply, sse

BODY = (b'{"model": "gpt-4", "stream": true, '
        b'"messages": [{"role": "user", "content": "slow"}]}')


def slow_events(count: int = 50):
    for i in range(count):
        yield sse({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4",
                   "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                "finish_reason": None}]})
    yield sse({"id": "s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    yield b"data: [DONE]\n\n"


def open_and_drop(port: int) -> bytes:
    """Start a streaming request, read the first bytes, then vanish."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    first = sock.recv(4096)
    sock.close()
    return first


@pytest.fixture
def proxy(start_gunicorn, provider_env):
    return start_gunicorn({**provider_env, "WEB_CONCURRENCY": "1", "SWITCHBOARD_THREADS": "4"})


def test_client_disconnect_closes_upstream_and_frees_threads(proxy, openai_emu):
    drops = 8  # twice the worker's threads: leaked threads would exhaust it
    before = openai_emu.closed_streams  # the emulator is shared with earlier tests
    for _ in range(drops):
        openai_emu.fail_next(Fault(reply=Reply(200, events=slow_events(), event_delay=0.05,
                                               content_type="text/event-stream")))
    for _ in range(drops):
        assert b"200 OK" in open_and_drop(proxy.port)
    deadline = time.monotonic() + 15
    while openai_emu.closed_streams - before < drops and time.monotonic() < deadline:
        time.sleep(0.1)
    assert openai_emu.closed_streams - before >= drops
    # far fewer chunks were sent than the 50 each stream had: the upstream saw the close early
    r = urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", body=BODY.replace(
        b"true", b"false"), headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status == 200


@pytest.mark.parametrize("worker_class,streams", [("gthread", 48), ("gevent", 300)])
def test_many_concurrent_streams(start_gunicorn, provider_env, openai_emu, worker_class, streams):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_WORKER_CLASS": worker_class,
                            "SWITCHBOARD_THREADS": "32", "WEB_CONCURRENCY": "2"})
    for _ in range(streams):
        openai_emu.fail_next(Fault(reply=Reply(200, events=slow_events(10), event_delay=0.05,
                                               content_type="text/event-stream")))
    http = urllib3.PoolManager(maxsize=streams)
    barrier = threading.Barrier(min(streams, 64))

    def one(_):
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        r = http.request("POST", f"{proxy.base_url}/v1/chat/completions", body=BODY,
                         headers={"Content-Type": "application/json"}, timeout=60)
        text = r.data.decode()
        return r.status, text.count('"content":"w'), text.endswith("data: [DONE]\n\n")

    with ThreadPoolExecutor(max_workers=streams) as pool:
        results = list(pool.map(one, range(streams)))
    assert all(result == (200, 10, True) for result in results), results[:3]
