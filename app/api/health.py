"""Liveness (no upstream call) and readiness (the proxy's own parts work)."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from flask import Blueprint, current_app

from app.api.auth import EXTENSION as KEYS
from app.storage.deadline import waits_until
from app.usage.ledger import ledger_of

bp = Blueprint("health", __name__)
log = logging.getLogger("switchboard")
# An orchestrator's probe gives up after about a second (Kubernetes' default timeoutSeconds):
# the parts are asked at the same time, each for at most this long, so a frozen database is
# reported within the probe's time rather than after the stores' own, longer bounds in turn.
PROBE_SECONDS = 1.0


@bp.get("/health")
def liveness():
    return {"status": "ok"}


@bp.get("/health/readiness")
def readiness():
    """503 while a part the proxy needs cannot be used now, naming it: the ledger's database
    and, with virtual keys in use (a master key set), the key store."""
    service = current_app.extensions["switchboard"]
    checks = {"config": "ok", "registry": "ok" if len(service.registry) else "empty"}
    probes: dict[str, Callable[[], None]] = {}
    ledger = ledger_of(service)
    if ledger is not None:
        probes["ledger"] = ledger.ping
    if service.settings.env.get("SWITCHBOARD_MASTER_KEY"):
        keys = current_app.extensions[KEYS]
        if keys.guard.up:
            probes["key_store"] = keys.ping
        else:
            checks["key_store"] = "unavailable"
    checks.update(_states(probes))
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


def _states(probes: dict[str, Callable[[], None]]) -> dict[str, str]:
    """Each probe's state, all asked at once and none for longer than PROBE_SECONDS."""
    if not probes:
        return {}
    deadline = time.monotonic() + PROBE_SECONDS
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        states = {name: pool.submit(_state, ping, deadline) for name, ping in probes.items()}
    return {name: state.result() for name, state in states.items()}


def _state(ping: Callable[[], None], deadline: float) -> str:
    try:
        with waits_until(deadline):
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
