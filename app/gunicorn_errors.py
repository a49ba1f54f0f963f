"""gunicorn's own answers to requests it cannot parse, in OpenAI's error shape.

gunicorn rejects some requests before the app sees them (a malformed request line, headers
over the limits, a bad chunk) and answers those with an HTML page; its messages quote what
the client sent, which may hold a key. `install()` (called from gunicorn.conf.py, for every
worker class) makes those answers JSON and scrubs key material from them and from gunicorn's
log lines about them.
"""
from __future__ import annotations

import logging

from gunicorn import util

from app.jsonfast import dumps
from app.service.upstream import scrub

_CODES = {400: "invalid_request", 403: "forbidden", 414: "request_line_too_long",
          417: "expectation_failed", 431: "request_headers_too_large",
          500: "internal_error", 501: "unsupported_transfer_coding"}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = dumps({"error": {
        "message": scrub(mesg or reason),
        "type": "invalid_request_error" if status_int < 500 else "server_error",
        "param": None,
        "code": _CODES.get(status_int, "invalid_request")}})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ScrubSecrets(logging.Filter):
    """gunicorn logs the rejected request line or header as it came."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


def install() -> None:
    util.write_error = write_json_error
    logging.getLogger("gunicorn.error").addFilter(ScrubSecrets())
