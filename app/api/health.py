"""Liveness (no upstream call) and readiness (the proxy's own parts work)."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app

from app.api.auth import EXTENSION as KEYS
from app.usage.ledger import ledger_of

bp = Blueprint("health", __name__)
log = logging.getLogger("switchboard")


@bp.get("/health")
def liveness():
    return {"status": "ok"}


@bp.get("/health/readiness")
def readiness():
    """503 while a part the proxy needs cannot be used now, naming it: the ledger's database
    and, with virtual keys in use (a master key set), the key store."""
    service = current_app.extensions["switchboard"]
    checks = {"config": "ok", "registry": "ok" if len(service.registry) else "empty"}
    ledger = ledger_of(service)
    if ledger is not None:
        checks["ledger"] = _state(ledger.ping)
    if service.settings.env.get("SWITCHBOARD_MASTER_KEY"):
        keys = current_app.extensions[KEYS]
        checks["key_store"] = _state(keys.ping) if keys.guard.up else "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


def _state(ping) -> str:
    try:
        ping()
    except Exception as exc:
        log.warning("readiness: %s: %s", type(exc).__name__, exc)
        return "unavailable"
    return "ok"


@bp.get("/health/deployments")
def deployments():
    """Each configured deployment's state: healthy or cooling down, failures, latency."""
    service = current_app.extensions["switchboard"]
    return {"deployments": service.pool.snapshot(service.router.configured_targets())}
