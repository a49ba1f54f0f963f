"""One worker's slice of a key (app/keys/allowance.py says how slices are taken and given
back) and the key's recent rate in that worker, which sizes its next slice."""
from __future__ import annotations

from dataclasses import dataclass

from app.keys.limits import Usage
from app.keys.store import KeyRecord

SLICE_SECONDS = 0.5    # a slice admits for this long; its size follows the last such span
_ROUNDING = 1e-9       # costs summed request by request still fit the slice they filled


@dataclass(eq=False)
class Slice:
    """One worker's allowance of one key, from its grant until it is given back."""

    key: KeyRecord
    lease: str | None        # its lease row (None: neither budget nor rates in SQL)
    window: int
    sql_rates: bool          # requests and tokens are counted in SQL (no Redis)
    requests: int            # granted
    tokens: int
    cost: float
    granted_at: float        # time.monotonic()
    usage: Usage             # the key's counters in the store just after the grant
    used_requests: int = 0
    used_tokens: int = 0     # prompt tokens counted at admission, real ones once finished
    used_cost: float = 0.0   # estimates of the requests in flight, real cost of the others
    spent: float = 0.0       # real cost of the finished requests
    flushed: float = 0.0     # the part of `spent` already added to the key's spend
    in_flight: int = 0
    open: bool = True        # still admitting
    given_back: bool = False
    redis_rates: bool = False  # requests and tokens are counted in Redis

    def fits(self, tokens: int, cost: float) -> bool:
        rates = self.sql_rates or self.redis_rates
        return (self.used_requests < self.requests
                and (not rates or self.used_tokens + tokens <= self.tokens)
                and (self.key.max_budget is None
                     or self.used_cost + cost <= self.cost * (1 + _ROUNDING)))

    def take(self, tokens: int, cost: float) -> Usage:
        """Admit one request; the key's counts as this worker now knows them."""
        self.used_requests += 1
        self.used_tokens += tokens
        self.used_cost += cost
        self.in_flight += 1
        return known_counts(self.usage, [self])

    def usable_for(self, key: KeyRecord, window: int, now: float) -> bool:
        return (self.open and key.updated_at == self.key.updated_at and self.window == window
                and now - self.granted_at < SLICE_SECONDS)


class Rate:
    """Requests of one key admitted by this worker: in the current span and the last one;
    and the tokens its finished requests really used, on average (recent ones weigh most)."""

    __slots__ = ("started", "current", "last", "tokens")

    def __init__(self, now: float):
        self.started, self.current, self.last, self.tokens = now, 0, 0, 0.0

    def used(self, tokens: int) -> None:
        self.tokens = tokens if not self.tokens else 0.8 * self.tokens + 0.2 * tokens

    def count(self, now: float) -> None:
        if now - self.started >= SLICE_SECONDS:
            spans = int((now - self.started) // SLICE_SECONDS)
            self.last = self.current if spans == 1 else 0
            self.current, self.started = 0, self.started + spans * SLICE_SECONDS
        self.current += 1


def known_counts(counted: Usage, pieces) -> Usage:
    """The key's counts as the store has them, with the unused part of these slices taken
    off (and the real tokens of their finished requests in place of their estimates)."""
    unused_requests = unused_tokens = 0
    for piece in pieces:
        unused_requests += piece.requests - piece.used_requests
        unused_tokens += piece.tokens - piece.used_tokens
    return Usage(requests=counted.requests - unused_requests,
                 tokens=max(0, counted.tokens - unused_tokens), in_flight=counted.in_flight,
                 spend=counted.spend, reserved=counted.reserved,
                 budget_reset_at=counted.budget_reset_at)
