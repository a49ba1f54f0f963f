"""Which failures are retried, which move on to a fallback, and how long to wait.

The rules: the request's own 400 is final (the next model would fail the same way),
except a context-length error, which goes to a larger model. Rate limits, 408, 5xx,
timeouts and connection errors are retried with backoff, then fall back. A provider's
authentication, permission and not-found errors fall back at once (retrying the same
key cannot help).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from app.errors import MissingCredentialError, ProxyError, UpstreamError

_CONTEXT_WORDING = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens|"
    r"input is too long|exceeds the maximum (number of )?tokens|input token count|"
    r"reduce the length of the messages|too long for (this|the) model", re.IGNORECASE)

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Our own statuses that mean "the provider could not serve it" (5xx mapped to 502, 504).
RETRYABLE_MAPPED = frozenset({429, 502, 503, 504})
FALLBACK_STATUSES = frozenset({401, 403, 404})
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 8.0

# Rank of a failure when every route failed: the client should see the one that best says
# what to do next (wait and retry beats a dead end), not merely the first.
_MEANING = {429: 6, 504: 5, 502: 4, 503: 4, 401: 3, 403: 3, 404: 2}


def is_context_window_error(error: ProxyError) -> bool:
    return error.status == 400 and (error.code == "context_length_exceeded" or bool(
        _CONTEXT_WORDING.search(error.message)))


def is_retryable(error: ProxyError) -> bool:
    if not isinstance(error, UpstreamError):
        return False
    if error.upstream_status is not None:
        return error.upstream_status in RETRYABLE_STATUSES
    return error.status in RETRYABLE_MAPPED  # timeouts and connection failures


def falls_back(error: ProxyError) -> bool:
    """True when another model may succeed where this one failed."""
    if isinstance(error, MissingCredentialError) or is_retryable(error):
        return True
    if isinstance(error, UpstreamError):
        return error.status in FALLBACK_STATUSES or error.status >= 500
    return False


def is_own_timeout(error: ProxyError) -> bool:
    """Our deadline ran out (not an upstream's own 504)."""
    return isinstance(error, UpstreamError) and error.code == "upstream_timeout"


def counts_against_deployment(error: ProxyError, cut_short: bool = False) -> bool:
    """Failures that say the deployment is unhealthy (not that the request was bad).
    A timeout counts only when the deployment had its whole time (`cut_short` False): a
    client's own short `timeout` says nothing about the deployment, and one tenant must not
    put a shared deployment into cooldown for everyone."""
    if cut_short and is_own_timeout(error):
        return False
    return isinstance(error, UpstreamError) and (
        is_retryable(error) or error.status in (401, 403))


def backoff_seconds(retry_number: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; the upstream's Retry-After wins when given."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** retry_number))


@dataclass
class Attempt:
    """One call that failed: which deployment, and the error it gave."""

    model: str
    error: ProxyError


def all_routes_failed(attempts: list[Attempt]) -> ProxyError:
    """One error listing every attempt, with the status of the most meaningful failure."""
    best = max((a.error for a in attempts), key=lambda e: _MEANING.get(e.status, 1))
    listing = "; ".join(f"[{a.model}] {a.error.message}" for a in attempts)
    return ProxyError(f"All {len(attempts)} attempts failed. {listing}", status=best.status,
                      type=best.type, code=best.code or "all_routes_failed",
                      param=best.param, headers=best.headers)
