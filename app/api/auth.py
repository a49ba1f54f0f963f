"""Who is calling, checked before every request: the master key, a virtual key, or nobody.

With SWITCHBOARD_MASTER_KEY set, only the liveness and readiness probes are open (probes
carry no key), and the dashboard's page shell (it holds no data; what it charts comes from
/spend, which needs the key). Virtual keys may call the completion endpoints and list
their models; every other endpoint, present or future, needs the master key. Without a
master key every endpoint is open (a warning says so at start), but a virtual key that is
presented is still checked and held to its limits.

A key is read from `Authorization: Bearer <key>`, `api-key` or `x-api-key`; never from the
query string (URLs end up in logs).
"""
from __future__ import annotations

import hmac
import logging
import re
import time
from contextlib import ExitStack

from flask import Flask, Response, current_app, g, request
from marshmallow import RAISE, Schema, fields
from werkzeug.exceptions import HTTPException

from app.api.body import read_json_body
from app.api.face_paths import PATH_FACES, face_for
from app.config import ConfigError
from app.errors import ProxyError
from app.keys.service import KeyService
from app.keys.store import KeyRecord
from app.service.completion import CompletionService
from app.service.events import RequestContext
from app.service.upstream import protect_secret
from app.storage.deadline import waits_until
from app.tracing import spans

log = logging.getLogger("switchboard")
EXTENSION = "switchboard.keys"
OPEN_PATHS = ("/health", "/health/readiness", "/dashboard")
OPEN_PREFIXES = ("/dashboard/assets/",)
COMPLETION_PATHS = ("/chat/completions", "/v1/chat/completions", "/embeddings", "/v1/embeddings",
                    "/completions", "/v1/completions")
CLIENT_PATHS = (*COMPLETION_PATHS, "/models", "/v1/models", "/model/info")
# One model's facts; a key's own stored responses (app/api/responses.py shows it only its own).
CLIENT_PREFIXES = ("/v1/models/", "/models/", "/v1/responses/", "/responses/")
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens")
_TOKEN = re.compile(r"^[\x21-\x7e]{1,1024}$")
_warned = False


class KeysSection(Schema):
    """`keys:` in the config file."""

    class Meta:
        unknown = RAISE

    public_metrics = fields.Boolean(load_default=False)  # /metrics without the master key


def unauthorized(message: str, code: str) -> ProxyError:
    return ProxyError(message, status=401, type="invalid_request_error", code=code,
                      headers={"WWW-Authenticate": "Bearer"})


def presented_token() -> tuple[str | None, str | None]:
    """(the key sent, or None; what is wrong with what was sent, or None)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None, "send the key as Authorization: Bearer <key>"
        token = token.strip(" ")
    else:
        token = request.headers.get("api-key") or request.headers.get("x-api-key")
        if token is None:
            return None, None
        token = token.strip(" ")
    if not _TOKEN.match(token):
        return None, "the key is malformed"
    return token, None


def own_deadline(path: str) -> float | None:
    """When the request's own `timeout` (seconds, in the body of a completion-type request)
    runs out, counted from now; None without one. It bounds the request's waits on the key
    store as much as the store's own bound does. The body is parsed here, once (the view
    reuses it); a body that does not parse sets no bound, and its error comes after
    authentication's, as OpenAI orders them."""
    if request.method != "POST" or (path not in COMPLETION_PATHS and path not in PATH_FACES):
        return None
    try:
        body = read_json_body()
    except (ProxyError, HTTPException):
        return None
    timeout = body.get("timeout") if isinstance(body, dict) else None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        return None
    return time.monotonic() + timeout


def identify(context: RequestContext) -> None:
    """Name the calling virtual key in the request context: its id and alias (never the
    key), and the models it may reach."""
    key = g.get("virtual_key")
    if key is not None:
        context.key_id, context.key_alias, context.models = key.id, key.alias, key.models


def admit(body: dict, context: RequestContext) -> None:
    """Hold a virtual key's request to its models, budget and rate limits (403 / 429)."""
    key = g.get("virtual_key")
    if key is not None:
        with spans.step("switchboard.key.limits", **{"switchboard.key_id": key.id}):
            g.admission = current_app.extensions[EXTENSION].admit(key, body, context)


def leased(chunks):
    """A stream that keeps its virtual key's parallel slot and reservation while it runs
    (taken now, while the request is live; the chunks flow after the view returns)."""
    admission = g.get("admission")
    if admission is None:
        return chunks
    return current_app.extensions[EXTENSION].held(admission, chunks)


def _key_service(service: CompletionService) -> KeyService:
    for consumer in service.consumers:
        if isinstance(consumer, KeyService):
            return consumer
    raise RuntimeError("the key service is not among the service's consumers")


def install(app: Flask, service: CompletionService) -> None:
    global _warned
    keys = _key_service(service)
    app.extensions[EXTENSION] = keys
    master = service.settings.env.get("SWITCHBOARD_MASTER_KEY") or None
    public = OPEN_PATHS + (("/metrics",) if service.settings.section(
        "keys", KeysSection())["public_metrics"] else ())
    if master and not _TOKEN.match(master):
        raise ConfigError("SWITCHBOARD_MASTER_KEY must be printable ASCII without spaces "
                          "(clients send it in a header)")
    if master:
        protect_secret(master)
    elif not _warned:
        _warned = True
        log.warning("SWITCHBOARD_MASTER_KEY is not set: every endpoint (completions, key "
                    "management, spend, the dashboard) is open to anyone who can reach this "
                    "proxy. Set it before exposing the proxy beyond this machine.")

    def reject(error: ProxyError, path: str, key: KeyRecord | None = None):
        """Refuse; a refused completion request still gets its event (ledger, integrations)."""
        if path in COMPLETION_PATHS or path in PATH_FACES:
            context = RequestContext(request_id=g.request_id, callbacks=g.get("callbacks", True),
                                     key_id=key and key.id, key_alias=key and key.alias,
                                     api=face_for(path).name)
            service.record_rejection(None, error, context)
        raise error

    @app.before_request
    def _authenticate():
        path = request.path.rstrip("/") or "/"
        if path in public or path.startswith(OPEN_PREFIXES):
            return
        token, problem = presented_token()
        if token is None:
            if master is None:
                return
            reject(unauthorized(f"Missing or malformed API key: {problem}." if problem else
                                "Missing API key: send Authorization: Bearer <key> (the openai "
                                "SDK's api_key), or an api-key or x-api-key header.",
                                "invalid_api_key" if problem else "api_key_required"), path)
        if master is not None and hmac.compare_digest(token.encode(), master.encode()):
            return
        if master is None and not token.startswith("sk-sb-"):
            return  # open proxy: any other token is just the SDK's placeholder, never a key
        # Every wait of this request on the key store (its look-up, admission and settling)
        # ends by the request's own deadline, until the request is torn down.
        g.store_waits = ExitStack()
        g.store_waits.enter_context(waits_until(own_deadline(path)))
        try:
            with spans.step("switchboard.key.check"):
                key = keys.authenticate(token)
        except ProxyError as error:   # the key store cannot be reached: 503
            reject(error, path)
        if key is None:
            reject(unauthorized("Incorrect API key provided.", "invalid_api_key"), path)
        if key.expired(time.time()):
            reject(unauthorized(f"The API key {key.label} has expired.", "key_expired"), path, key)
        if master is not None and path not in CLIENT_PATHS and path not in PATH_FACES \
                and not path.startswith(CLIENT_PREFIXES):
            reject(ProxyError("This endpoint needs the master key; a virtual key may call "
                              "the completion endpoints and /v1/models.", status=403,
                              type="invalid_request_error", code="master_key_required"), path, key)
        g.virtual_key = key

    @app.teardown_request
    def _end_store_waits(_error) -> None:
        waits = g.pop("store_waits", None)
        if waits is not None:
            waits.close()

    @app.after_request
    def _describe_limits(response: Response) -> Response:
        key: KeyRecord | None = g.get("virtual_key")
        if key is None:
            return response
        if not any(name in response.headers for name in RATE_HEADERS):  # our 429s carry them
            admission = g.get("admission")
            headers = admission.headers if admission else keys.enforcer.peek_headers(key)
            response.headers.extend(headers)   # none of them is there yet
        return response
