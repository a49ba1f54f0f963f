"""POST /config/reload (master key): check the config file, then ask gunicorn's master to
reload (as `kill -HUP` does; see app/reload.py)."""
from __future__ import annotations

import os
import signal

from flask import Blueprint, current_app, request

from app.config import ConfigError, load_settings
from app.errors import InvalidRequestError, ProxyError
from app.service.router import Router

bp = Blueprint("config_reload", __name__)


@bp.post("/config/reload")
def reload_config():
    service = current_app.extensions["switchboard"]
    try:
        # The errors a file can hold, found before any worker is replaced.
        Router(load_settings(service.settings.env), service.registry)
    except ConfigError as exc:
        raise InvalidRequestError(f"config not reloaded: {exc}", code="invalid_config") from None
    if not request.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn"):
        raise ProxyError("config reload needs the proxy to run under gunicorn (make run); "
                         "restart the process instead", status=501, type="server_error",
                         code="reload_unsupported")
    os.kill(os.getppid(), signal.SIGHUP)
    return {"status": "reloading", "config": service.settings.config_path}, 202
