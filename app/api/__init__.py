"""The web layer: a Flask app factory and its blueprints. It calls the service, never the reverse."""
from __future__ import annotations

import logging
import re
import time
import uuid
from functools import lru_cache

from flask import Flask, g, request

from app.api import (auth, budget, cache, chat, config_reload, cors, dashboard, embeddings,
                     health, keepalive, keys, messages, metrics, models, responses, spend,
                     text_completions, tracing)
from app.api.errors import register_error_handlers
from app.api.limits import read_unsized_body
from app.callbacks import optout
from app.logs import ACCESS_FIELDS
from app.service.completion import CompletionService

log = logging.getLogger("switchboard")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

# Each feature's blueprint; a feature adds its line here.
BLUEPRINTS = (chat.bp, messages.bp, models.bp, health.bp, spend.bp, budget.bp, dashboard.bp,
              metrics.bp, keys.bp, cache.bp, config_reload.bp, embeddings.bp, text_completions.bp,
              responses.bp)
# Each feature's `install(app, service)`: request hooks and settings it adds to the app.
INSTALLERS: tuple = (tracing.install, keepalive.install, optout.install,
                     cors.install, auth.install,  # CORS preflights are answered before auth
                     responses.install)


def _timed(wsgi_app):
    """Note when the request reached the app, before Flask parses it, so that the proxy's
    self-measured overhead includes the framework's own work."""
    def timed(environ, start_response):
        environ["switchboard.started"] = time.perf_counter()
        return wsgi_app(environ, start_response)
    return timed


def create_app(service: CompletionService | None = None) -> Flask:
    service = service or CompletionService()
    app = Flask(__name__)
    app.wsgi_app = _timed(app.wsgi_app)
    # Flask asks `inspect` whether each hook and the view are coroutine functions at every
    # call (6 per chat request); the answer is fixed per function.
    app.ensure_sync = lru_cache(maxsize=1024)(app.ensure_sync)
    app.config["MAX_CONTENT_LENGTH"] = service.settings.max_request_bytes
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    app.extensions["switchboard"] = service

    @app.before_request
    def _assign_request_id():
        sent = request.environ.get("HTTP_X_REQUEST_ID", "")  # (request.headers, without its lookup)
        g.request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        read_unsized_body(service.settings.max_request_bytes)

    for install in INSTALLERS:
        install(app, service)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app)

    @app.after_request
    def _tag_response(response):
        state = g._get_current_object()  # once: each use of the proxy looks it up (~1 us)
        request_id = response.headers["x-request-id"] = state.get("request_id") or uuid.uuid4().hex
        key = state.get("virtual_key")
        # For the access log line, written by gunicorn after the response (app/logs.py).
        request.environ[ACCESS_FIELDS] = {
            "request_id": request_id, "model": response.headers.get("x-switchboard-model"),
            "key_id": key.id if key is not None else None, **(state.get("trace_ids") or {})}
        return response

    return app
