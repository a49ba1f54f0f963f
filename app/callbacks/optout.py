"""Per-request opt-out: `x-switchboard-callbacks: off` keeps one request out of every logging
integration, when the operator allows it (`callbacks: {allow_client_opt_out: true}`).
Metrics still count the request: they are the operator's own."""
from __future__ import annotations

from flask import Flask, g, request

from app.callbacks.settings import load_callback_settings

HEADER = "x-switchboard-callbacks"
_OFF = frozenset({"off", "false", "0", "no"})


def install(app: Flask, service) -> None:
    if not load_callback_settings(service.settings).allow_client_opt_out:
        return  # the header is ignored: nothing to add to each request

    @app.before_request
    def _read_opt_out():
        g.callbacks = request.headers.get(HEADER, "").strip().lower() not in _OFF
