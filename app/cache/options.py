"""The request body's `cache` object: per-request cache controls.

`{"no-cache": true}` don't read, `{"no-store": true}` don't write, `"ttl"` seconds the
stored answer lives, `"s-maxage"` accept only an entry younger than that, `"semantic":
false` answer this request from an exact match only, `"namespace"` a separate cache scope.
A wrong type is a 400 naming the field (`cache.ttl`), like every other request field.
"""
from __future__ import annotations

from typing import Any

from app.errors import InvalidRequestError

MAX_TTL = 365 * 24 * 3600.0
MAX_NAMESPACE = 256


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a boolean (true or false)"


def _seconds(value: Any, low_inclusive: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number of seconds"
    if value < 0 or (value == 0 and not low_inclusive) or value > MAX_TTL:
        return f"must be {'at least 0' if low_inclusive else 'above 0'} and at most {MAX_TTL:g}"
    return None


def _namespace(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not 0 < len(value) <= MAX_NAMESPACE:
        return f"must hold 1 to {MAX_NAMESPACE} characters"
    return None


_CHECKS = {
    "no-cache": _flag,
    "no-store": _flag,
    "semantic": _flag,
    "ttl": lambda value: _seconds(value, low_inclusive=False),
    "s-maxage": lambda value: _seconds(value, low_inclusive=True),
    "namespace": _namespace,
}


def cache_options(raw: Any) -> dict[str, Any]:
    """The validated `cache` object ({} when absent); InvalidRequestError names a bad field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequestError("Invalid parameter 'cache': must be an object.", param="cache",
                                  code="invalid_value")
    for name, value in raw.items():
        check = _CHECKS.get(name)
        problem = check(value) if check else (
            f"is not a cache option (known: {', '.join(_CHECKS)})")
        if problem:
            raise InvalidRequestError(f"Invalid parameter 'cache.{name}': {problem}.",
                                      param=f"cache.{name}", code="invalid_value")
    return dict(raw)
