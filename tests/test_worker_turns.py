"""A worker's kept-alive connections take turns: one whose next request is always ready
(pipelined here; in production a fast client behind a fast upstream) cannot hold the worker
while another connection's request waits. Real gunicorn, one worker, raw sockets."""
from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.timeout(60)
HEALTH = b"GET /health HTTP/1.1\r\nHost: proxy\r\n\r\n"
PIPELINED = 200


def answers_in(data: bytes) -> int:
    return data.count(b"HTTP/1.1 200 ")


def read_answers(sock: socket.socket, count: int) -> bytes:
    """Read until `count` whole answers to /health have come (each ends with its JSON body)."""
    data = b""
    while answers_in(data) < count or not data.rstrip().endswith(b"}"):
        piece = sock.recv(65536)
        assert piece, "the proxy closed the connection"
        data += piece
    return data


def kept_alive(proxy) -> socket.socket:
    """A connection that has been served once (the worker reads its next request as a
    kept-alive one)."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(HEALTH)
    read_answers(sock, 1)
    return sock


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_connection_with_requests_queued_lets_another_one_in(start_gunicorn, provider_env,
                                                             worker_class):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_WORKER_CLASS": worker_class,
                            "WEB_CONCURRENCY": "1"})
    with kept_alive(proxy) as busy, kept_alive(proxy) as other:
        busy.sendall(HEALTH * PIPELINED)
        served_first = read_answers(busy, 1)  # the busy connection's greenlet is running
        other.sendall(HEALTH)
        read_answers(other, 1)
        busy.setblocking(False)
        try:
            while piece := busy.recv(1 << 20):
                served_first += piece
        except BlockingIOError:
            pass
        # Taking turns, the other connection waits for a few of the busy one's requests;
        # without, for all of them.
        assert answers_in(served_first) < PIPELINED // 4
        busy.setblocking(True)
        read_answers(busy, PIPELINED - answers_in(served_first))
