"""Cache administration (GET /cache/stats, POST /cache/flush, DELETE /cache/<key>) and the
Cache-Control request header of the completion endpoint."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

from app.errors import ProxyError

bp = Blueprint("cache", __name__)

# Cache-Control directives a client may send, as the body's `cache` options they stand for.
DIRECTIVES = {"no-cache": "no-cache", "no-store": "no-store"}


def apply_cache_control(body: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The body with `Cache-Control: no-cache` / `no-store` added to its `cache` options
    (the header wins over the body). Other directives are ignored; a `cache` value that is
    not an object is left for the service to reject."""
    if not header:
        return body
    found = {DIRECTIVES[d] for d in (part.strip().split("=")[0].lower()
                                     for part in header.split(",")) if d in DIRECTIVES}
    options = body.get("cache", {})
    if not found or not isinstance(options, dict):
        return body
    return {**body, "cache": {**options, **dict.fromkeys(found, True)}}


def _cache():
    cache = current_app.extensions["switchboard"].cache
    if cache is None:
        raise ProxyError("Caching is turned off in this proxy's configuration (cache.enabled).",
                         status=409, type="invalid_request_error", code="cache_disabled")
    return cache


def _unavailable(error: Exception) -> ProxyError:
    return ProxyError(f"The cache backend is unavailable ({type(error).__name__}).", status=503,
                      type="server_error", code="cache_unavailable")


@bp.get("/cache/stats")
def stats():
    cache = current_app.extensions["switchboard"].cache
    if cache is None:
        return {"enabled": False}
    return cache.stats()


@bp.post("/cache/flush")
def flush():
    cache = _cache()
    try:
        cache.flush()
    except Exception as error:
        cache.faults.record("flush", error)
        raise _unavailable(error) from None
    return {"flushed": True}


@bp.delete("/cache/<path:key>")
def delete(key: str):
    cache = _cache()
    try:
        removed = cache.delete(key)
    except Exception as error:
        cache.faults.record("delete", error)
        raise _unavailable(error) from None
    if not removed:
        raise ProxyError(f"No cache entry with key '{key[:64]}'.", status=404,
                         type="invalid_request_error", param="key", code="cache_key_not_found")
    return {"deleted": True, "key": key}
