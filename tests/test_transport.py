"""The upstream HTTP client (libcurl): keep-alive reuse, timeouts, cut and abandoned streams,
large bodies, descriptors above select()'s limit, gevent, and what it refuses to send:
header values that could smuggle a request, protocols other than http(s), connections to
addresses other than a route's checked ones, and pooling a client's own connection."""
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
from app.service.egress import Destination, Route, UnsafeUpstream, parse_url
from app.service.transport import Transport, TransportError
from tests.raw_upstream import RawUpstream
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


class RawServer(RawUpstream):
    """A raw upstream whose every answer is scripted by `behaviour`:
    "ok" (a JSON answer), "slow" (the answer after `delay` s), "stream" (two SSE events),
    "stall" (one SSE event, then silence) or "endless" (an event every 20 ms until the
    client goes). It also counts how many requests were in flight at once."""

    def __init__(self, behaviour: str = "ok", delay: float = 0.0):
        self.behaviour, self.delay = behaviour, delay
        self.in_flight = self.peak = 0
        self.client_left = threading.Event()
        super().__init__()
        self.url = f"{self.base}/v1/chat/completions"

    def respond(self, conn: socket.socket, head: bytes, body: bytes) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            self._answer(conn)
        except OSError:
            self.client_left.set()
            raise
        finally:
            with self._lock:
                self.in_flight -= 1

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
    _, head, body = server.requests[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Authorization: Bearer sk-x\r\n" in head and body == b'{"q":1}'


def test_headers_are_read_case_insensitively_by_lower_name(server):
    answer = Transport().send(post(server.url), 5)
    assert answer.headers["retry-after"] == "3" and answer.headers["x-request-id"] == "abc"


def test_get_sends_no_body(server):
    transport = Transport()
    transport.send(post(server.url), 5)  # the same handle, used for a POST first
    transport.send(UpstreamRequest("GET", server.url, {}), 5)
    _, head, body = server.requests[1]
    assert head.startswith(b"GET ") and body == b"" and b"content-length" not in head.lower()


def test_large_body_goes_at_once_without_expect_continue(server):
    big = {"messages": [{"role": "user", "content": "x" * 3_000_000}]}
    assert Transport().send(post(server.url, big), 10).status == 200
    _, head, body = server.requests[0]
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


@pytest.mark.parametrize("server", [("endless", 0.0)], indirect=True)
def test_a_stream_stopped_half_way_leaves_no_socket_for_the_next_call(server):
    """libcurl keeps no word of the socket of a transfer stopped half-way: the handle that ran
    it is closed, not pooled, so no later call polls a socket that is not its own."""
    transport = Transport()
    stream = transport.open_stream(post(server.url), 5)
    assert stream.read1().startswith(b"data: one")
    stream.close()
    assert transport._idle == []
    server.behaviour = "ok"
    assert transport.send(post(server.url), 5).status == 200
    assert [exchange.sockets for exchange in transport._idle] == [{}]


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


@pytest.mark.parametrize("server", [("slow", 0.3)], indirect=True)
def test_hundreds_of_calls_in_flight_keep_their_connections_for_the_next_ones(server):
    """A gevent worker holds hundreds of slow calls at once: the next round reuses every
    connection the last one opened instead of connecting anew (a small pool closed all but
    64 of them after each call)."""
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import gevent
        from app.providers.base import UpstreamRequest
        from app.service.transport import Transport
        transport = Transport()
        request = UpstreamRequest("POST", {server.url!r}, {{}}, {{"q": 1}})
        for _ in range(2):
            jobs = [gevent.spawn(transport.send, request, 20) for _ in range(150)]
            gevent.joinall(jobs, raise_error=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    assert server.peak == 150 and server.connections == 150


@pytest.mark.parametrize("value", ["sk-x\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1",
                                   "sk-x\nX-Forged: 1", "sk-x\rX", "sk-\x00x", "sk-\u00e9"])
def test_a_header_value_that_could_end_its_line_is_never_sent(server, value):
    transport = Transport()
    with pytest.raises(UnsafeUpstream) as caught:
        transport.send(post(server.url, Authorization=f"Bearer {value}"), 5)
    assert value not in str(caught.value)
    with pytest.raises(UnsafeUpstream):
        transport.send(post(server.url, **{"X-Bad Name": "v"}), 5)
    assert transport.send(post(server.url, Authorization="Bearer sk-fine"), 5).status == 200
    assert server.connections == 1 and len(server.requests) == 1
    assert b"smuggled" not in server.all_bytes() and b"X-Forged" not in server.all_bytes()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "dict://127.0.0.1:{port}/info",
                                 "gopher://127.0.0.1:{port}/_x", "http://127.0.0.1:{port}/a b",
                                 "http://127.0.0.1:{port}\\@x/", "ftp://127.0.0.1:{port}/"])
def test_only_http_and_https_urls_are_fetched(server, url):
    with pytest.raises(UnsafeUpstream):
        Transport().send(UpstreamRequest("GET", url.format(port=server.port), {}), 5)
    assert server.connections == 0


def test_libcurl_itself_refuses_other_protocols(server):
    """The allow-list holds even for a URL that did not come through the parser."""
    forged = Route(Destination("dict", "127.0.0.1", server.port, "/info"))
    with pytest.raises(TransportError) as caught:
        Transport().send(UpstreamRequest("GET", "ignored", {}), 5, forged)
    assert "disabled" in str(caught.value) and server.connections == 0


def test_a_pinned_route_connects_to_its_checked_addresses_only(server):
    elsewhere = RawUpstream("127.0.0.2")
    try:
        destination = parse_url(f"http://pinned.invalid:{server.port}/v1/chat/completions")
        answer = Transport().send(post(destination.url), 5, Route(destination, ("127.0.0.1",)))
        assert answer.status == 200
        assert server.requests[0][1].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert f"Host: pinned.invalid:{server.port}".encode() in server.requests[0][1]
        # libcurl never looks an IP literal up, so the pin cannot apply: the connect-time
        # guard refuses any address that was not checked
        literal = parse_url(f"http://127.0.0.2:{elsewhere.port}/v1")
        with pytest.raises(TransportError):
            Transport().send(post(literal.url), 5, Route(literal, ("127.0.0.1",)))
        assert elsewhere.connections == 0
    finally:
        elsewhere.close()


def test_an_isolated_route_gets_a_connection_of_its_own_closed_after(server):
    transport = Transport()
    operator = Route(parse_url(server.url))
    client = Route(parse_url(server.url), isolated=True)
    for route in (operator, client, operator, client, operator):
        assert transport.send(post(server.url), 5, route).status == 200
    by_connection = [number for number, _, _ in server.requests]
    assert by_connection[0] == by_connection[2] == by_connection[4]
    assert len({by_connection[0], by_connection[1], by_connection[3]}) == 3
    deadline = time.monotonic() + 5
    while {by_connection[1], by_connection[3]} - server.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert {by_connection[1], by_connection[3]} <= server.closed
    assert by_connection[0] not in server.closed


@pytest.mark.parametrize("server", [("endless", 0.0)], indirect=True)
def test_closing_a_stream_whose_handles_were_already_collected_is_quiet(server):
    """An abandoned stream is collected together with its libcurl handles, in whatever order
    the garbage collector takes them: closing it afterwards raises nothing and pools nothing."""
    transport = Transport()
    stream = transport.open_stream(post(server.url), 5)
    assert stream.read1().startswith(b"data: one")
    stream._exchange.multi.close()   # what the collector did first
    stream.close()
    assert transport._idle == []


@pytest.mark.parametrize("server", [("endless", 0.0)], indirect=True)
def test_a_running_stream_reads_after_the_work_ready_in_its_worker(server):
    """Under gevent, a started stream's next read waits while other greenlets of the worker
    are ready to run (a burst of new requests starting), then takes every event that arrived
    meanwhile at once; a worker that stays busy holds it back at most RELAY_DEFER_SECONDS."""
    script = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import time, gevent
        from app.providers.base import UpstreamRequest
        from app.service.transport import RELAY_DEFER_SECONDS, Transport

        def busy(seconds):   # always ready to run: a greenlet that only yields
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                gevent.sleep(0)

        stream = Transport().open_stream(UpstreamRequest("POST", {server.url!r}, {{}}, {{}}), 10)
        assert stream.read1().startswith(b"data: one")   # the stream's start
        for seconds in (0.3, 3 * RELAY_DEFER_SECONDS):
            time.sleep(0.05)
            worker = gevent.spawn(busy, seconds)
            gevent.sleep(0)
            started = time.monotonic()
            piece = stream.read1()
            print(round(time.monotonic() - started, 2), piece.count(b"data: more"))
            worker.kill()
        stream.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (after_burst, events), (after_cap, _) = [
        (float(a), int(b)) for a, b in (line.split() for line in result.stdout.splitlines())]
    assert 0.3 <= after_burst < 0.45 and events >= 5
    assert 0.5 <= after_cap < 1.0
