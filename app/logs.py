"""The proxy's own log lines: human-readable by default, one JSON object per line with
SWITCHBOARD_LOG_FORMAT=json, so that platform teams can grep by request id.

JSON lines carry time, level, logger, message and, inside a request, its `request_id` (and
`trace_id` / `span_id` when tracing is on). Nothing here adds key material or message
content; what a line says is up to the code that logs it, which never logs either.
"""
from __future__ import annotations

import logging
import sys
from typing import Mapping

from pythonjsonlogger.json import JsonFormatter

LOG_FORMAT_ENV = "SWITCHBOARD_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_FIELDS = "switchboard.access"  # WSGI environ key: the app's fields for the access line
_RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


def wants_json(env: Mapping[str, str]) -> bool:
    from app.config import ConfigError
    value = (env.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if value not in ("text", "json"):
        raise ConfigError(f"{LOG_FORMAT_ENV} must be text or json, got {value!r}")
    return value == "json"


def json_formatter() -> logging.Formatter:
    formatter = JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                              rename_fields=_RENAMED)
    formatter.default_msec_format = "%s.%03d"
    return formatter


class RequestFields(logging.Filter):
    """Adds the current request's ids to every record logged while it is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_request_context
        if has_request_context() and not hasattr(record, "request_id"):
            record.request_id = g.get("request_id")
            for name, value in (g.get("trace_ids") or {}).items():
                setattr(record, name, value)
        return True


def configure_logging(env: Mapping[str, str]) -> None:
    """The root handler every `switchboard.*` logger writes through."""
    handler = logging.StreamHandler(sys.stderr)
    if wants_json(env):
        handler.setFormatter(json_formatter())
        handler.addFilter(RequestFields())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
