"""A request body read through app/gunicorn_clients.ClientBody: bytes that came with the
request's head are read without a deadline (nothing to wait for), the rest within one; either
way the body is whole and the connection stays open once it is read to its end."""
from __future__ import annotations

import socket
from contextlib import contextmanager

from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from app.gunicorn_clients import ClientBody, Waiting

BODY = b'{"model":"gpt-4o-mini","messages":[]}'
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Length: %d\r\n\r\n" % len(BODY)


class RecordingWorker:
    """The Worker protocol, noting each bounded wait on the client."""

    def __init__(self):
        self.waits: list[float] = []

    @contextmanager
    def waiting_on(self, sock, deadline=float("inf")):
        yield Waiting(sock)

    @contextmanager
    def within(self, sock, seconds):
        self.waits.append(seconds)
        yield


def read_body(first_send: bytes, later: bytes) -> tuple[bytes, RecordingWorker, bool]:
    """(the body read, the worker, whether the request must close) when the client sends
    `first_send`, and `later` once the head has been parsed."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(first_send)
        request = next(RequestParser(Config(), ours, ("127.0.0.1", 4321)))
        theirs.sendall(later)
        worker = RecordingWorker()
        request.body = body = ClientBody(request, worker, ours)
        data = body.read(1 << 16) + body.read(1 << 16)
        return data, worker, request.must_close


def test_a_body_sent_with_its_head_is_read_without_a_wait():
    data, worker, must_close = read_body(HEAD + BODY, b"")
    assert data == BODY
    assert worker.waits == []
    assert not must_close


def test_a_body_still_coming_is_read_within_the_deadline():
    data, worker, must_close = read_body(HEAD + BODY[:5], BODY[5:])
    assert data == BODY
    assert len(worker.waits) == 1 and worker.waits[0] > 0
    assert not must_close
