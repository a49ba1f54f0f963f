"""Which models an embedding request may fall back to: embedding models of the same vector
length, since vectors of another model (or length) cannot be compared with the ones a
client already stored. Configured fallbacks are checked at start, a request's own before
any call."""
from __future__ import annotations

from typing import Any

from app.config import ConfigError
from app.errors import InvalidRequestError, ProxyError
from app.service.router import Router


def embedding_facts(router: Router, name: str) -> tuple[str | None, int | None]:
    """(mode, dimensions) of a model name as the router resolves it; a deployment's params
    (`mode`, `dimensions`) describe a self-hosted model the registry does not know."""
    target = router.resolve(name)[0]
    mode = target.settings.get("mode") or target.info.get("mode")
    return mode, target.settings.get("dimensions") or target.info.get("dimensions")


def incompatibility(router: Router, model: str, fallback: str,
                    dimensions: int | None = None) -> str | None:
    """Why `fallback` cannot stand in for the embedding model `model` (None: it can);
    `dimensions` is the length a request asked for, which both must be able to give."""
    _, own = embedding_facts(router, model)
    mode, theirs = embedding_facts(router, fallback)
    if mode not in (None, "embedding"):
        return f"{fallback!r} is a {mode} model, not an embedding model"
    if dimensions is None and own and theirs and own != theirs:
        return f"{fallback!r} gives {theirs}-dimension vectors, {model!r} {own}"
    return None


def check_configured(router: Router, fallbacks: dict[str, list[str]]) -> None:
    """Refuse a config whose embedding model falls back to an incompatible one."""
    for model, chain in fallbacks.items():
        try:
            if embedding_facts(router, model)[0] != "embedding":
                continue
        except ProxyError:
            continue        # not a model known here: not known as an embedding model either
        try:
            for fallback in chain:
                reason = incompatibility(router, model, fallback)
                if reason:
                    raise ConfigError(f"config fallbacks[{model!r}]: {reason}; an embedding "
                                      f"model falls back only to one with the same dimensions")
        except ProxyError as error:
            raise ConfigError(f"config fallbacks[{model!r}]: {error.message}") from None


def check_requested(router: Router, model: str, fallbacks: Any, dimensions: Any) -> None:
    """A request's own fallbacks for an embedding model: a 400 before any call."""
    for position, fallback in enumerate(fallbacks or ()):
        try:
            reason = incompatibility(router, model, fallback, dimensions)
        except ProxyError:
            continue        # an unknown fallback is reported when the plan reaches it
        if reason:
            raise InvalidRequestError(f"Invalid 'fallbacks[{position}]': {reason}.",
                                      param="fallbacks", code="incompatible_fallback")
