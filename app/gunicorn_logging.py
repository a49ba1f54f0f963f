"""gunicorn's own log and its access log in JSON when SWITCHBOARD_LOG_FORMAT=json.

The access line is written by gunicorn once the response has gone out, so it knows the
status and the time taken; the app leaves what only it knows (the request id, the model that
answered, the virtual key's id, the trace) in the WSGI environ for it (app/api/__init__.py).
"""
from __future__ import annotations

import os

from gunicorn.glogging import Logger

from app.logs import ACCESS_FIELDS, json_formatter, wants_json


class GunicornLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        self.json = wants_json(os.environ)
        if self.json:
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(json_formatter())

    def access(self, resp, req, environ, request_time):
        if not self.json or not self.access_log_enabled:
            return super().access(resp, req, environ, request_time)
        fields = {"method": req.method, "path": req.path, "status": _status_code(resp),
                  "latency_ms": round(request_time.total_seconds() * 1000, 3),
                  "bytes": getattr(resp, "sent", None), "remote": environ.get("REMOTE_ADDR"),
                  **environ.get(ACCESS_FIELDS, {})}
        self.access_log.info("request", extra=fields)


def _status_code(resp) -> int | None:
    status = getattr(resp, "status_code", None) or str(getattr(resp, "status", "") or "")
    try:
        return int(str(status).split(None, 1)[0])
    except ValueError:
        return None
