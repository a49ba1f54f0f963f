"""Whitespace before a slow JSON answer, for platforms whose router cuts silent requests.

Heroku's router closes a request that has sent no byte for 30 s (error H12); a non-streamed
call to a slow model often takes longer. With SWITCHBOARD_KEEPALIVE_WHITESPACE=<seconds>, a
non-streamed answer not ready after that many seconds is started at once (status 200,
Content-Type application/json) and a newline is sent every interval until the JSON body
follows. Leading whitespace is valid JSON, so clients parse the body as usual; the price is
that a failure found after the first newline is reported in the body (`{"error": ...}`) under
status 200, not in the status line.
"""
from __future__ import annotations

import logging
import threading
from typing import Iterable, Mapping

from flask import Flask

from app.platform import KEEPALIVE_ENV, startup_warnings

log = logging.getLogger("switchboard")

STREAM_FLAG = "switchboard.stream"  # set by the endpoint once it has read the body


def keepalive_seconds(env: Mapping[str, str]) -> float:
    from app.config import ConfigError
    raw = env.get(KEEPALIVE_ENV) or "0"
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"{KEEPALIVE_ENV} must be a number of seconds, got {raw!r}") from None
    if seconds < 0:
        raise ConfigError(f"{KEEPALIVE_ENV} must not be negative")
    return seconds


class WhitespaceKeepalive:
    """WSGI middleware: runs a POST in its own thread (a greenlet under gevent) and, when the
    answer is a JSON body that is not ready within `interval` seconds, starts the response and
    sends a newline every interval until it is."""

    def __init__(self, app, interval: float):
        self.app = app
        self.interval = interval

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        call = _InnerCall(self.app, environ)
        call.start()
        while not call.done.wait(self.interval):
            if environ.get(STREAM_FLAG) is False:  # a JSON answer: safe to start it now
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Cache-Control", "no-cache")])
                return self._padded(call)
        return call.replay(start_response)

    def _padded(self, call: "_InnerCall") -> Iterable[bytes]:
        while not call.done.wait(self.interval):
            yield b"\n"
        yield from call.body_bytes()


class _InnerCall:
    """The wrapped app's answer, produced on another thread."""

    def __init__(self, app, environ):
        self.app, self.environ = app, environ
        self.done = threading.Event()
        self.status = "500 INTERNAL SERVER ERROR"
        self.headers: list = []
        self.body: Iterable[bytes] = ()
        self.error: BaseException | None = None

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="keepalive-inner").start()

    def _start_response(self, status, headers, exc_info=None):
        self.status, self.headers = status, headers
        return lambda data: None  # Flask never uses write()

    def _run(self) -> None:
        try:
            self.body = self.app(self.environ, self._start_response)
        except BaseException as exc:  # re-raised on the request's own thread
            self.error = exc
        finally:
            self.done.set()

    def replay(self, start_response):
        if self.error is not None:
            raise self.error
        start_response(self.status, self.headers)
        return self.body

    def body_bytes(self) -> Iterable[bytes]:
        if self.error is not None:
            raise self.error
        try:
            yield from self.body
        finally:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()


def install(app: Flask, service) -> None:
    env = service.settings.env
    for warning in startup_warnings(env):
        log.warning(warning)
    interval = keepalive_seconds(env)
    if interval:
        app.wsgi_app = WhitespaceKeepalive(app.wsgi_app, interval)
