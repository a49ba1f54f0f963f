"""gunicorn's HTTP/1 response writer, sending an answer's head and body in one write.

gunicorn writes a response's status line and headers with one send(2) and each body piece
with another. A JSON answer is one piece, so every answer took two sends (each with gevent's
buffer-size lookup), and with TCP_NODELAY two segments: the client woke for the head, then
read again for the body. Here the head goes out with the first body piece (one send, one
segment, one wake-up, and no buffer-size lookup before it). A stream (chunked) goes out the
same way: its head with the first chunk, then one send per piece written (a gevent worker
writes the chunks that arrived together as one piece: app/gunicorn_writes.py). Bodies
gunicorn trims and answers without a body keep gunicorn's own path.

The Date header is formatted once per second rather than per response (it has one-second
resolution; formatting it cost as much as the rest of the head).

`install()` (from gunicorn.conf.py, for every worker class) makes gunicorn use both.
"""
from __future__ import annotations

import time

from gunicorn import util
from gunicorn.http import wsgi

_format_date = util.http_date
_date: tuple[int, str] = (-1, "")


def http_date(timestamp: float | None = None) -> str:
    """gunicorn's `util.http_date`, the current second's text kept until the next second."""
    global _date
    if timestamp is not None:
        return _format_date(timestamp)
    second = int(time.time())
    if _date[0] != second:
        _date = (second, _format_date(second))
    return _date[1]


class Response(wsgi.Response):
    def head(self) -> bytes:
        """The status line and headers, as gunicorn's `send_headers` writes them."""
        lines = self.default_headers()
        lines.extend([f"{name}: {value}\r\n" for name, value in self.headers])
        return f"{''.join(lines)}\r\n".encode("latin-1")

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        util.write(self.sock, self.head())
        self.headers_sent = True

    def write(self, arg) -> None:
        if (self.headers_sent or self._omits_body or not isinstance(arg, bytes) or not arg
                or (self.response_length is not None and len(arg) > self.response_length)):
            super().write(arg)
            return
        data = self.head() + self._framed(arg)
        self.headers_sent = True
        self.sent += len(arg)
        self._send(data)

    def _emit_body(self, data: bytes) -> None:
        """Each later piece (a stream's chunks): one send, as the first."""
        self._send(self._framed(data))

    def _framed(self, data: bytes) -> bytes:
        return b"%X\r\n%s\r\n" % (len(data), data) if self.chunked else data

    def _send(self, data: bytes) -> None:
        # send() first: gevent's sendall() looks up the socket's buffer size (a syscall) to
        # cut the data in pieces, which an answer that fits in one send never needs.
        taken = self.sock.send(data)
        if taken < len(data):
            util.write(self.sock, data[taken:])


def install() -> None:
    util.http_date = http_date
    wsgi.Response = Response
