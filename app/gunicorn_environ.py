"""gunicorn's `wsgi.errors` stream, looked up when written to rather than per request.

gunicorn gives every request a fresh `wsgi.errors` object that finds the error log's streams
as it is made: `logging.getLogger` (the logging module's lock, a Python lock under gevent)
and a walk of the log's handlers, 2-3 us of every request's CPU, for a stream the proxy
writes to only when something goes wrong. `LazyErrors` finds the same streams, the same
way, at each write.

`install()` (from gunicorn.conf.py, for every worker class) makes gunicorn use it.
"""
from __future__ import annotations

import io

from gunicorn.http import wsgi

_GunicornErrors = wsgi.WSGIErrorsWrapper


class LazyErrors(io.RawIOBase):
    def __init__(self, cfg):  # io.RawIOBase has no __init__ of its own to call
        self.cfg = cfg

    def write(self, data) -> None:
        _GunicornErrors(self.cfg).write(data)


def install() -> None:
    wsgi.WSGIErrorsWrapper = LazyErrors
