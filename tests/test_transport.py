"""The upstream HTTP client (libcurl): keep-alive reuse, timeouts, cut and abandoned streams,
large bodies, descriptors above select()'s limit, and gevent."""
from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app.providers.base import UpstreamRequest
from app.service.transport import Transport, TransportError
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 whose every answer is scripted by `behaviour`:
    "ok" (a JSON answer), "slow" (the answer after `delay` s), "stream" (two SSE events),
    "stall" (one SSE event, then silence) or "endless" (an event every 20 ms until the
    client goes). It counts connections, requests and how many were in flight at once."""

    def __init__(self, behaviour: str = "ok", delay: float = 0.0):
        self.behaviour, self.delay = behaviour, delay
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.in_flight = self.peak = 0
        self.client_left = threading.Event()
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1/chat/completions"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = reader.read(length)
                with self._lock:
                    self.requests.append((head, body))
                    self.in_flight += 1
                    self.peak = max(self.peak, self.in_flight)
                try:
                    self._answer(conn)
                finally:
                    with self._lock:
                        self.in_flight -= 1
        except OSError:
            self.client_left.set()
        finally:
            conn.close()

    def _answer(self, conn: socket.socket) -> None:
        if self.behaviour in ("ok", "slow"):
            time.sleep(self.delay)
            payload = b'{"ok": true}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"X-Request-Id: abc\r\nRetry-After: 3\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        send = lambda data: conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))  # noqa: E731
        send(b"data: one\n\n")
        if self.behaviour == "stream":
            send(b"data: two\n\n")
            conn.sendall(b"0\r\n\r\n")
        elif self.behaviour == "stall":
            time.sleep(3)
            conn.sendall(b"0\r\n\r\n")
        else:  # endless: until the client hangs up
            for _ in range(500):
                time.sleep(0.02)
                send(b"data: more\n\n")
            conn.sendall(b"0\r\n\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server(request):
    behaviour, delay = getattr(request, "param", ("ok", 0.0))
    srv = RawServer(behaviour, delay)
    yield srv
    srv.close()


def post(url: str, json=None, **headers) -> UpstreamRequest:
    return UpstreamRequest("POST", url, {"Content-Type": "application/json", **headers},
                           {"q": 1} if json is None else json)


def test_calls_reuse_one_keep_alive_connection(server):
    transport = Transport()
    for _ in range(20):
        answer = transport.send(post(server.url, Authorization="Bearer sk-x"), 5)
        assert (answer.status, answer.data) == (200, b'{"ok": true}')
    assert server.connections == 1
    head, body = server.requests[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Authorization: Bearer sk-x\r\n" in head and body == b'{"q":1}'


def test_headers_are_read_case_insensitively_by_lower_name(server):
    answer = Transport().send(post(server.url), 5)
    assert answer.headers["retry-after"] == "3" and answer.headers["x-request-id"] == "abc"


def test_get_sends_no_body(server):
    transport = Transport()
    transport.send(post(server.url), 5)  # the same handle, used for a POST first
    transport.send(UpstreamRequest("GET", server.url, {}), 5)
    head, body = server.requests[1]
    assert head.startswith(b"GET ") and body == b"" and b"content-length" not in head.lower()


def test_large_body_goes_at_once_without_expect_continue(server):
    big = {"messages": [{"role": "user", "content": "x" * 3_000_000}]}
    assert Transport().send(post(server.url, big), 10).status == 200
    head, body = server.requests[0]
    assert b"expect" not in head.lower() and len(body) > 3_000_000


def test_refused_connection_is_a_transport_error():
    with pytest.raises(TransportError) as caught:
        Transport().send(post(f"http://127.0.0.1:{free_port()}/x"), 5)
    assert not caught.value.timed_out and "refused" in str(caught.value)


@pytest.mark.parametrize("server", [("slow", 3.0)], indirect=True)
def test_an_answer_slower_than_the_timeout_times_out(server):
    with pytest.raises(TransportError) as caught:
        Transport().send(post(server.url), 0.3)
    assert caught.value.timed_out


@pytest.mark.parametrize("server", [("stream", 0.0)], indirect=True)
def test_a_stream_is_read_piece_by_piece_then_the_connection_is_reused(server):
    transport = Transport()
    for _ in range(3):
        stream = transport.open_stream(post(server.url), 5)
        assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
        assert stream.read() == b"data: one\n\ndata: two\n\n"
        stream.close()
    assert server.connections == 1


@pytest.mark.parametrize("server", [("stall", 0.0)], indirect=True)
def test_a_stalled_stream_raises_after_the_stall_timeout(server):
    stream = Transport().open_stream(post(server.url), 0.3)
    assert stream.read1() == b"data: one\n\n"
    with pytest.raises(TransportError) as caught:
        stream.read1()
    assert caught.value.timed_out
    stream.close()


@pytest.mark.parametrize("server", [("endless", 0.0)], indirect=True)
def test_closing_a_stream_early_hangs_up_on_the_upstream(server):
    transport = Transport()
    stream = transport.open_stream(post(server.url), 5)
    assert stream.read1().startswith(b"data: one")
    stream.close()
    assert server.client_left.wait(5), "the upstream never saw the client go"
    server.behaviour = "ok"
    assert transport.send(post(server.url), 5).status == 200  # a fresh connection
    assert server.connections == 2


def test_descriptors_above_select_limit_work(server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit here is {hard}, too low to pass select()'s 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert Transport().send(post(server.url), 5).status == 200
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("server", [("slow", 0.5)], indirect=True)
def test_calls_wait_cooperatively_under_gevent(server):
    """In a gevent worker a call must let other greenlets run while it waits."""
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent
        from app.providers.base import UpstreamRequest
        from app.service.transport import Transport
        transport = Transport()
        request = UpstreamRequest("POST", {server.url!r}, {{}}, {{"q": 1}})
        jobs = [gevent.spawn(transport.send, request, 10) for _ in range(8)]
        gevent.joinall(jobs, raise_error=True)
        print(sorted(job.value.status for job in jobs))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str([200] * 8)
    assert server.peak == 8  # all eight were in flight at once
