"""gunicorn's response writer as the proxy installs it (app/gunicorn_response.py): the same
bytes as gunicorn's own, an answer's head and body in one send. A SOCK_SEQPACKET pair keeps
each send a record of its own, so the number of sends is seen by the reader."""
from __future__ import annotations

import socket
import threading
import time

import gevent
import gevent.socket
import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from app.gunicorn_response import Response, http_date

JSON = [("Content-Type", "application/json"), ("Content-Length", "11")]


def records(response_class, method: str, headers: list, pieces: list[bytes]) -> list[bytes]:
    """Each send of one answer written by `response_class` to a request of `method`."""
    cfg = Config()
    request = next(RequestParser(cfg, [f"{method} /v1/x HTTP/1.1\r\nHost: p\r\n\r\n".encode()],
                                 ("127.0.0.1", 5)))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        response = response_class(request, ours, cfg)
        response.start_response("200 OK", headers)
        for piece in pieces:
            response.write(piece)
        response.close()
        theirs.setblocking(False)
        sent = []
        while True:
            try:
                sent.append(theirs.recv(1 << 16))
            except BlockingIOError:
                return sent


def both(method: str, headers: list, pieces: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(ours, gunicorn's) sends of the same answer, within one second (the Date header)."""
    while True:
        second = int(time.time())
        pair = (records(Response, method, headers, pieces),
                records(wsgi.Response, method, headers, pieces))
        if int(time.time()) == second:
            return pair


def test_an_answer_goes_out_in_one_send_with_gunicorns_bytes():
    ours, gunicorns = both("POST", JSON, [b'{"ok":true}'])
    assert len(gunicorns) == 2          # head, then body
    assert ours == [b"".join(gunicorns)]
    assert ours[0].startswith(b"HTTP/1.1 200 OK\r\n") and ours[0].endswith(b'\r\n\r\n{"ok":true}')


def test_a_stream_sends_its_head_with_the_first_chunk_then_one_send_per_chunk():
    ours, gunicorns = both("POST", [("Content-Type", "text/event-stream")],
                           [b"data: 1\n\n", b"data: 2\n\n"])
    assert len(gunicorns) == 4          # head, chunk, chunk, the last (empty) chunk
    assert ours == [gunicorns[0] + gunicorns[1], *gunicorns[2:]]
    assert ours[1] == b"9\r\ndata: 2\n\n\r\n"


@pytest.mark.parametrize("method, headers, pieces", [
    ("HEAD", JSON, [b'{"ok":true}']),                                  # no body on the wire
    ("POST", [("Content-Type", "text/event-stream")], [b"data: 1\n\n", b"data: 2\n\n"]),  # chunked
    ("POST", [("Content-Length", "4")], [b"too long"]),                # trimmed to its length
    ("POST", JSON, []),                                                # head only, at close
])
def test_other_answers_keep_gunicorns_bytes(method, headers, pieces):
    ours, gunicorns = both(method, headers, pieces)
    assert b"".join(ours) == b"".join(gunicorns)


def test_the_date_header_is_the_current_second():
    while True:
        second = int(time.time())
        ours, gunicorns = http_date(), util.http_date()  # gunicorn's: not installed here
        if int(time.time()) == second:
            break
    assert ours == gunicorns
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize("kind", ["gevent", "plain"])
def test_a_body_larger_than_the_socket_buffer_arrives_whole(kind):
    """The first send takes what fits (a gevent socket does not wait for the rest); the
    rest follows while the reader drains."""
    body = bytes(range(256)) * 16384           # 4 MiB, far beyond a socket's buffer
    cfg = Config()
    request = next(RequestParser(cfg, [b"POST /v1/x HTTP/1.1\r\nHost: p\r\n\r\n"],
                                 ("127.0.0.1", 5)))
    ours, theirs = (gevent.socket if kind == "gevent" else socket).socketpair()
    received = bytearray()

    def drain():
        while piece := theirs.recv(1 << 16):
            received.extend(piece)

    reader = gevent.spawn(drain) if kind == "gevent" else threading.Thread(target=drain)
    if kind == "plain":
        reader.start()
    with ours:
        response = Response(request, ours, cfg)
        response.start_response("200 OK", [("Content-Length", str(len(body)))])
        response.write(body)
        response.close()
    reader.join(10)
    theirs.close()
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and rest == body
