"""A served request's objects are freed by reference counting, with no reference cycle left
for the garbage collector: gunicorn.conf.py makes its full collections rare (GC_THRESHOLDS),
since each one holds every request of a gevent worker for as long as it walks them."""
from __future__ import annotations

import gc
import socket
import weakref

from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from app.gunicorn_clients import ClientBody

RAW = b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Length: 2\r\n\r\n{}"


def test_a_request_with_its_deadline_body_is_freed_without_the_collector():
    request = next(RequestParser(Config(), [RAW], ("127.0.0.1", 4321)))
    with socket.socket() as sock:
        request.body = ClientBody(request, worker=None, sock=sock)
        freed = weakref.ref(request)
        gc.disable()
        try:
            del request
            assert freed() is None
        finally:
            gc.enable()
