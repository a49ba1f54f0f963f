"""gunicorn's `wsgi.errors` as the proxy installs it (app/gunicorn_environ.py): what is
written reaches the error log's streams, as with gunicorn's own, found at the write."""
from __future__ import annotations

import io
import logging

from gunicorn.config import Config
from gunicorn.http import wsgi

from app import gunicorn_environ


def test_wsgi_errors_writes_reach_the_error_log_streams(monkeypatch, tmp_path):
    monkeypatch.setattr(wsgi, "WSGIErrorsWrapper", wsgi.WSGIErrorsWrapper)  # restored after
    gunicorn_environ.install()
    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))  # "-" (stderr) skips the first handler
    errors = wsgi.base_environ(cfg)["wsgi.errors"]
    assert isinstance(errors, io.RawIOBase)
    log = logging.getLogger("gunicorn.error")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)   # added after the request's environ was made
    log.addHandler(handler)
    try:
        errors.write("the app's own error line\n")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "the app's own error line\n"
