"""The rules both counter stores apply, and the OpenAI-shaped answers when a key hits one.

Rate windows are fixed minutes (epoch-aligned), so every worker and instance agrees on
which window a request falls in without talking to the others.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from app.errors import ProxyError
from app.keys.store import KeyRecord, iso

WINDOW_SECONDS = 60
REQUESTS, TOKENS, PARALLEL = "requests", "tokens", "parallel"


def window_of(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def window_left(now: float) -> float:
    """Seconds until the current window ends."""
    return WINDOW_SECONDS - now % WINDOW_SECONDS


@dataclass
class Usage:
    """A key's counts as its store saw them at admission (this request included once admitted)."""

    requests: int = 0          # requests admitted in this minute
    tokens: int = 0            # tokens counted in this minute
    in_flight: int = 0
    spend: float = 0.0
    reserved: float = 0.0      # cost held by requests in flight
    budget_reset_at: float | None = None


@dataclass
class Admission:
    """One admitted request, until its event settles it."""

    key: KeyRecord
    tokens: int                # prompt tokens counted towards tpm now
    cost: float                # cost reserved against the budget now
    window: int
    requests: int = 1                  # requests counted (a slice counts several)
    sql_lease: str | None = None       # lease row: budget reservation, in-flight count
    sql_rates: bool = False            # rpm / tpm counted in SQL (no Redis)
    redis_rates: bool = False          # rpm / tpm / max_parallel_requests counted in Redis
    redis_lease: str | None = None     # the parallel slot it holds there
    stale: bool = False                # the key changed since `key` was read
    headers: dict[str, str] = field(default_factory=dict)
    request: tuple[str, float] | None = None  # (request id, start) it waits on the event of
    allowance: Any = None              # the worker's slice it was admitted on (allowance.py)


def has_rate_limits(key: KeyRecord) -> bool:
    return (key.rpm_limit, key.tpm_limit, key.max_parallel_requests) != (None, None, None)


def rate_limit_hit(key: KeyRecord, usage: Usage, tokens: int) -> str | None:
    """Which limit this request would break, counted before it is admitted."""
    if key.rpm_limit is not None and usage.requests + 1 > key.rpm_limit:
        return REQUESTS
    if key.tpm_limit is not None and usage.tokens + tokens > key.tpm_limit:
        return TOKENS
    if key.max_parallel_requests is not None and usage.in_flight + 1 > key.max_parallel_requests:
        return PARALLEL
    return None


def budget_fits(key: KeyRecord, usage: Usage, cost: float) -> bool:
    """Some budget must be left, and this request's estimate must fit in what is left after
    the requests in flight; so concurrent requests overspend only by what they cost beyond
    their estimates."""
    if key.max_budget is None:
        return True
    held = usage.spend + usage.reserved
    return held < key.max_budget and held + cost <= key.max_budget


def rate_headers(key: KeyRecord, usage: Usage, now: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for a key with rpm or tpm limits."""
    headers = {}
    reset = f"{math.ceil(window_left(now))}s"
    if key.rpm_limit is not None:
        headers["x-ratelimit-limit-requests"] = str(key.rpm_limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, key.rpm_limit - usage.requests))
        headers["x-ratelimit-reset-requests"] = reset
    if key.tpm_limit is not None:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm_limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, key.tpm_limit - usage.tokens))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def rate_limited(key: KeyRecord, hit: str, usage: Usage, tokens: int, now: float) -> ProxyError:
    headers = rate_headers(key, usage, now)
    if hit == PARALLEL:
        message = (f"Too many requests in flight for key {key.label}: limit "
                   f"{key.max_parallel_requests} at once (max_parallel_requests). Retry when "
                   f"one has finished.")
        headers["Retry-After"] = "1"
        return ProxyError(message, status=429, type="requests", code="rate_limit_exceeded",
                          headers=headers)
    wait = math.ceil(window_left(now))
    if hit == REQUESTS:
        what = (f"requests per min (RPM): Limit {key.rpm_limit}, Used {usage.requests}, "
                f"Requested 1")
    else:
        what = (f"tokens per min (TPM): Limit {key.tpm_limit}, Used {usage.tokens}, "
                f"Requested {tokens}")
    headers["Retry-After"] = str(wait)
    return ProxyError(f"Rate limit reached for key {key.label} on {what}. Please try again in "
                      f"{wait}s.", status=429, type=hit, code="rate_limit_exceeded",
                      headers=headers)


def budget_exceeded(key: KeyRecord, usage: Usage, cost: float, now: float) -> ProxyError:
    message = (f"Budget exceeded for key {key.label}: spend ${usage.spend:.6f} of max_budget "
               f"${key.max_budget:.6f}")
    if usage.reserved:
        message += f" (${usage.reserved:.6f} more held by requests in flight)"
    if cost:
        message += f"; this request is estimated at ${cost:.6f}"
    headers = {}
    if usage.budget_reset_at is not None:
        message += f". The budget resets at {iso(usage.budget_reset_at)}"
        headers["Retry-After"] = str(max(1, math.ceil(usage.budget_reset_at - now)))
    return ProxyError(message + ".", status=429, type="insufficient_quota",
                      code="budget_exceeded", headers=headers)
