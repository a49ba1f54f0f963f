"""Budgets (always) and, without Redis, rate limits, in the SQL database every worker and
instance shares.

An admission is one transaction that locks the key (the key's row on PostgreSQL; SQLite
has a single writer), reads what the key has used, refuses or counts, and commits; so
two requests can never both take the last slot. Each admitted request holds a lease row
with its reserved cost until its event settles it.
"""
from __future__ import annotations

from app.errors import ProxyError
from app.keys.limits import (REQUESTS, TOKENS, Admission, Usage, budget_exceeded, budget_fits,
                             rate_limit_hit, rate_limited, window_of)
from app.keys.store import duration_seconds
from app.storage.database import Database, Transaction

# Add to a key's count in a window, or start the window over; never below 0, and never
# onto a newer window than the one meant.
_ADD = ("INSERT INTO api_key_windows (key_id, kind, window_start, used) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key_id, kind) DO UPDATE SET used = CASE "
        "WHEN api_key_windows.window_start = excluded.window_start THEN "
        "CASE WHEN api_key_windows.used + ? < 0 THEN 0 ELSE api_key_windows.used + ? END "
        "ELSE excluded.used END, window_start = excluded.window_start "
        "WHERE api_key_windows.window_start <= excluded.window_start")


def _add(tx: Transaction, key_id: str, kind: str, window: int, amount: int) -> None:
    tx.execute(_ADD, (key_id, kind, window, max(amount, 0), amount, amount))


def revoked_error() -> ProxyError:
    return ProxyError("The API key was revoked.", status=401, type="invalid_request_error",
                      code="invalid_api_key")


class SqlCounters:
    def __init__(self, database: Database, lease_seconds: float):
        self.db = database
        self.lease_seconds = lease_seconds

    def admit(self, admission: Admission, rates: bool, now: float) -> Usage:
        """Count the request, or raise the 429 for the limit it breaks."""
        key = admission.key
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        with self.db.transaction() as tx:
            rows = tx.fetch("SELECT spend, budget_reset_at, budget_duration FROM api_keys "
                            f"WHERE id = ?{lock}", (key.id,))
            if not rows:
                raise revoked_error()
            spend, reset_at, duration = rows[0]
            if reset_at is not None and duration and reset_at <= now:
                spend, reset_at = 0.0, now + duration_seconds(duration)
                tx.execute("UPDATE api_keys SET spend = 0, budget_reset_at = ? WHERE id = ?",
                           (reset_at, key.id))
            tx.execute("DELETE FROM api_key_leases WHERE key_id = ? AND expires_at <= ?",
                       (key.id, now))
            in_flight, reserved = tx.fetch("SELECT COUNT(*), COALESCE(SUM(cost), 0) "
                                           "FROM api_key_leases WHERE key_id = ?", (key.id,))[0]
            usage = Usage(in_flight=in_flight, spend=spend, reserved=reserved,
                          budget_reset_at=reset_at)
            if rates:
                self._read_window(tx.fetch, key.id, admission.window, usage)
                hit = rate_limit_hit(key, usage, admission.tokens)
                if hit:
                    raise rate_limited(key, hit, usage, admission.tokens, now)
            if not budget_fits(key, usage, admission.cost):
                raise budget_exceeded(key, usage, admission.cost, now)
            tx.execute("INSERT INTO api_key_leases (id, key_id, cost, expires_at) "
                       "VALUES (?, ?, ?, ?)",
                       (admission.sql_lease, key.id, admission.cost, now + self.lease_seconds))
            if rates:
                _add(tx, key.id, REQUESTS, admission.window, 1)
                _add(tx, key.id, TOKENS, admission.window, admission.tokens)
        usage.in_flight += 1
        usage.reserved += admission.cost
        if rates:
            usage.requests += 1
            usage.tokens += admission.tokens
        return usage

    def settle(self, key_id: str, lease: str | None, cost: float, window: int | None,
               token_delta: int) -> None:
        """Release the lease, add the real cost to the key's spend, and correct the token count
        of `window` by what the request really used (None: its tokens are not counted here)."""
        if not lease and not cost and not (window is not None and token_delta):
            return
        with self.db.transaction() as tx:
            if lease:
                tx.execute("DELETE FROM api_key_leases WHERE id = ?", (lease,))
            if cost:
                tx.execute("UPDATE api_keys SET spend = spend + ? WHERE id = ?", (cost, key_id))
            if window is not None and token_delta:
                _add(tx, key_id, TOKENS, window, token_delta)

    def extend(self, lease: str, until: float) -> None:
        self.db.execute("UPDATE api_key_leases SET expires_at = ? WHERE id = ?", (until, lease))

    def release(self, lease: str) -> None:
        """Drop a lease whose request was refused by another limit after this one admitted it."""
        self.db.execute("DELETE FROM api_key_leases WHERE id = ?", (lease,))

    def peek(self, key_id: str, now: float) -> Usage:
        """The key's counts in the current window, without counting anything."""
        usage = Usage()
        self._read_window(self.db.query, key_id, window_of(now), usage)
        return usage

    @staticmethod
    def _read_window(fetch, key_id: str, window: int, usage: Usage) -> None:
        for kind, start, used in fetch("SELECT kind, window_start, used FROM api_key_windows "
                                          "WHERE key_id = ?", (key_id,)):
            if start == window:
                setattr(usage, kind, int(used))
