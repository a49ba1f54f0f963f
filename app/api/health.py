"""Liveness (no upstream call) and readiness (the proxy's own parts work)."""
from __future__ import annotations

from flask import Blueprint, current_app

bp = Blueprint("health", __name__)


@bp.get("/health")
def liveness():
    return {"status": "ok"}


@bp.get("/health/readiness")
def readiness():
    service = current_app.extensions["switchboard"]
    checks = {"config": "ok", "registry": "ok" if len(service.registry) else "empty"}
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


@bp.get("/health/deployments")
def deployments():
    """Each configured deployment's state: healthy or cooling down, failures, latency."""
    service = current_app.extensions["switchboard"]
    return {"deployments": service.pool.snapshot(service.router.configured_targets())}
