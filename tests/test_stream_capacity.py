"""Under real gunicorn: client disconnects free the upstream, and many streams at once."""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from tests.conftest import module_gunicorn
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


def start_stream(port: int) -> socket.socket:
    """A raw connection that has sent a streaming request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    return sock


def open_and_drop(port: int) -> bytes:
    """Start a streaming request, read the first bytes, then vanish."""
    sock = start_stream(port)
    first = sock.recv(4096)
    sock.close()
    return first


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def proxy(request):
    """One worker of four threads, one gunicorn per worker class for the tests below (each
    counts only the upstream streams it opened itself)."""
    return module_gunicorn(request, {"SWITCHBOARD_WORKER_CLASS": request.param,
                                     "WEB_CONCURRENCY": "1", "SWITCHBOARD_THREADS": "4"})


@pytest.mark.parametrize("proxy", ["gevent"], indirect=True)
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
    # far fewer chunks were sent than the 50 each stream had: the upstream saw the close early.
    # (30 s: the emulator checks the first plain answer against a spec it loads then.)
    r = urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", body=BODY.replace(
        b"true", b"false"), headers={"Content-Type": "application/json"}, timeout=30)
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


def read_first_chunk_and_drop(port: int) -> None:
    """Start a streaming request, wait for its first content chunk, then hang up."""
    sock = start_stream(port)
    seen = b""
    while b'"content":"w0 "' not in seen.replace(b": ", b":"):
        piece = sock.recv(4096)
        assert piece, seen
        seen += piece
    sock.close()


def test_hanging_up_mid_stream_closes_the_upstream_within_a_second(proxy, openai_emu):
    """Clients drop slow streams part-way (the upstream pauses 5 s between chunks): each
    upstream connection is closed within 1 s of the hang-up, none is left open, and the
    proxy serves normally afterwards."""
    drops = 3
    opened, closed = openai_emu.open_streams, openai_emu.closed_streams  # a shared emulator
    for _ in range(drops):
        openai_emu.fail_next(Fault(reply=Reply(200, events=slow_events(6), event_delay=5,
                                               content_type="text/event-stream")))
    with ThreadPoolExecutor(max_workers=drops) as pool:
        list(pool.map(lambda _: read_first_chunk_and_drop(proxy.port), range(drops)))
    hung_up = time.monotonic()
    while openai_emu.closed_streams - closed < drops and time.monotonic() - hung_up < 5:
        time.sleep(0.02)
    waited = time.monotonic() - hung_up
    assert openai_emu.closed_streams - closed == drops == openai_emu.open_streams - opened
    assert waited < 1.0
    r = urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", body=BODY.replace(
        b"true", b"false"), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status == 200
