"""Budgets (and, without Redis, rpm / tpm / max_parallel_requests) counted in the SQL store.

Each key's row carries its counters: spend, the cost `reserved` by its requests in flight,
their number `in_flight`, and the current one-minute window's requests and tokens. Admitting
a request is one conditional UPDATE of that row: it counts the request only where every
limit still holds, so two requests can never both take the last slot, and the row is
locked only for that one statement (never across round trips). On PostgreSQL the same
statement also inserts the request's lease row and the whole admission is one round trip;
settling is one more. SQLite runs the two statements in one short write transaction.

A lease row per request (its reserved cost and when it lapses) is what lets a crashed
worker's reservation lapse: leases past their time are subtracted from the counters when
they could refuse a request (when an admission fails), never on the request path otherwise.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import NamedTuple, Sequence

from app.errors import ProxyError
from app.jsonfast import dumps
from app.keys.limits import (PARALLEL, Admission, Usage, budget_exceeded, budget_fits,
                             rate_limit_hit, rate_limited, window_of)
from app.keys.store import KeyRecord
from app.storage.database import Database

ATTEMPTS = 3  # a refusal that the row's state no longer explains is tried again this often

# The spend as of now: a budget period that is over starts again at 0.
_SPEND = "CASE WHEN budget_reset_at <= :now THEN 0 ELSE spend END"
_REQUESTS = "CASE WHEN window_start = :window THEN window_requests ELSE 0 END"
_TOKENS = "CASE WHEN window_start = :window THEN window_tokens ELSE 0 END"
_RETURNED = ("spend, reserved, in_flight, window_requests, window_tokens, budget_reset_at, "
             "updated_at")


@functools.lru_cache(maxsize=None)
def _admit_statement(rates: bool) -> str:
    counting = (f", window_requests = {_REQUESTS} + :requests, "
                f"window_tokens = {_TOKENS} + :tokens, window_start = :window") if rates else ""
    limits = (f" AND (rpm_limit IS NULL OR {_REQUESTS} + :requests <= rpm_limit)"
              f" AND (tpm_limit IS NULL OR {_TOKENS} + :tokens <= tpm_limit)"
              " AND (max_parallel_requests IS NULL OR in_flight + 1 <= max_parallel_requests)"
              ) if rates else ""
    return (f"UPDATE api_keys SET spend = {_SPEND}, budget_reset_at = CASE WHEN "
            "budget_reset_at <= :now THEN :next_reset ELSE budget_reset_at END, "
            f"reserved = reserved + :cost, in_flight = in_flight + 1{counting} "
            f"WHERE id = :id AND (max_budget IS NULL OR ({_SPEND} + reserved < max_budget "
            f"AND {_SPEND} + reserved + :cost <= max_budget)){limits} RETURNING {_RETURNED}")


_LEASE = ("INSERT INTO api_key_leases (id, key_id, cost, expires_at) "
          "SELECT :lease, :id, :cost, :expires")


@functools.lru_cache(maxsize=None)
def _release_statement(freed: str, count: str, tokens: bool) -> str:
    """Subtract `count` freed leases holding `freed` from the row, add :cost to the spend, and
    (with `tokens`) correct the token count of :window by :delta and its request count by
    :requests: never below 0, and a newer window starts over. With no request left in
    flight nothing stays reserved (no drift)."""
    correction = (
        ", window_tokens = CASE WHEN window_start = :window THEN (CASE WHEN window_tokens + "
        ":delta < 0 THEN 0 ELSE window_tokens + :delta END) WHEN window_start < :window THEN "
        "(CASE WHEN :delta < 0 THEN 0 ELSE :delta END) ELSE window_tokens END, "
        "window_requests = CASE WHEN window_start = :window THEN (CASE WHEN window_requests + "
        ":requests < 0 THEN 0 ELSE window_requests + :requests END) WHEN window_start < :window "
        "THEN 0 ELSE window_requests END, "
        "window_start = CASE WHEN window_start < :window THEN :window ELSE window_start END"
    ) if tokens else ""
    return (f"UPDATE api_keys SET spend = spend + :cost, reserved = CASE WHEN in_flight - "
            f"{count} <= 0 THEN 0 ELSE reserved - {freed} END, in_flight = CASE WHEN "
            f"in_flight - {count} <= 0 THEN 0 ELSE in_flight - {count} END{correction} "
            "WHERE id = :id")


# A slice's finished requests moved from its reservation to the spend (add_spend).
_SHRINK_LEASE = "UPDATE api_key_leases SET cost = cost - :cost WHERE id = :lease"
_ADD_SPEND = ("UPDATE api_keys SET spend = spend + :cost, reserved = CASE WHEN NOT ({kept}) "
              "THEN reserved WHEN reserved < :cost THEN 0 ELSE reserved - :cost END "
              "WHERE id = :id")
_ADD_SPEND_SQLITE = _ADD_SPEND.format(kept=":kept")
_ADD_SPEND_PG = (f"WITH l AS ({_SHRINK_LEASE} RETURNING id) "
                 + _ADD_SPEND.format(kept="EXISTS (SELECT 1 FROM l)"))

_STATE = ("SELECT max_budget, rpm_limit, tpm_limit, max_parallel_requests, "
          f"{_SPEND}, reserved, in_flight, {_REQUESTS}, {_TOKENS}, "
          "CASE WHEN budget_reset_at <= :now THEN :next_reset ELSE budget_reset_at END "
          "FROM api_keys WHERE id = :id")
_NAME = re.compile(r":([a-z_]+)")


@functools.lru_cache(maxsize=None)
def _compiled(statement: str) -> tuple[str, tuple[str, ...]]:
    return _NAME.sub("?", statement), tuple(_NAME.findall(statement))


def _bound(statement: str, values: dict) -> tuple[str, list]:
    """A statement written with :names, as the `?` statement and values Database takes."""
    text, names = _compiled(statement)
    return text, [values[name] for name in names]


class Settle(NamedTuple):
    """One finished request (or slice of requests) to settle: its lease (None: it holds
    none), its real cost, and the tokens and requests to add to the counts of `window` (None:
    they are not counted here)."""

    key_id: str
    lease: str | None
    cost: float
    window: int | None
    delta: int
    requests: int = 0


def revoked_error() -> ProxyError:
    return ProxyError("The API key was revoked.", status=401, type="invalid_request_error",
                      code="invalid_api_key")


class SqlCounters:
    def __init__(self, database: Database, lease_seconds: float):
        self.db = database
        self.lease_seconds = lease_seconds
        self.postgres = database.dialect == "postgresql"

    def admit(self, admission: Admission, rates: bool, now: float) -> Usage:
        """Count the request, or raise the 429 for the limit it breaks (401 for a key that
        is gone). `admission.stale` says whether the key changed since `admission.key` was
        read."""
        key = admission.key
        values = self._values(admission, now)
        for _ in range(ATTEMPTS):
            usage = self._counted(admission, rates, values)
            if usage is not None:
                return usage
            if self._sweep(key.id, now):
                continue  # leases of a crashed worker had lapsed: try again without them
            current, usage = self._state(key, values)
            hit = rate_limit_hit(current, usage, admission.tokens) if rates else None
            if hit:
                raise rate_limited(current, hit, usage, admission.tokens, now)
            if not budget_fits(current, usage, admission.cost):
                raise budget_exceeded(current, usage, admission.cost, now)
        raise rate_limited(key, PARALLEL, Usage(), admission.tokens, now)  # contended: retry

    def try_admit(self, admission: Admission, rates: bool, now: float) -> Usage | None:
        """Count the admission (`admission.requests` requests) if every limit allows it, in
        one try; None when one does not (nothing is counted)."""
        return self._counted(admission, rates, self._values(admission, now))

    def _values(self, admission: Admission, now: float) -> dict:
        key = admission.key
        return {"id": key.id, "now": now, "cost": admission.cost, "tokens": admission.tokens,
                "requests": admission.requests, "window": admission.window,
                "lease": admission.sql_lease, "expires": now + self.lease_seconds,
                "next_reset": now + key.budget_seconds if key.budget_seconds else None}

    def _counted(self, admission: Admission, rates: bool, values: dict) -> Usage | None:
        """The key's counts after counting the admission, or None when a limit refuses it;
        `admission.stale` says whether the key changed since `admission.key` was read."""
        row = self._count(rates, values)
        if row is None:
            return None
        spend, reserved, in_flight, requests, tokens, reset_at, updated_at = row
        admission.stale = updated_at != admission.key.updated_at
        usage = Usage(in_flight=int(in_flight), spend=spend, reserved=reserved,
                      budget_reset_at=reset_at)
        if rates:
            usage.requests, usage.tokens = int(requests), int(tokens)
        return usage

    def _count(self, rates: bool, values: dict) -> tuple | None:
        """The row's counters after admitting the request, or None when a limit refuses it."""
        update = _admit_statement(rates)
        if self.postgres:
            statement = f"WITH k AS ({update}), l AS ({_LEASE} FROM k) SELECT * FROM k"
            rows = self.db.run(*_bound(statement, values))
            return rows[0] if rows else None
        with self.db.transaction() as tx:
            rows = tx.fetch(*_bound(update, values))
            if rows:
                tx.execute(*_bound(_LEASE, values))
        return rows[0] if rows else None

    def _state(self, key: KeyRecord, values: dict) -> tuple[KeyRecord, Usage]:
        """The key's limits and counts as they stand (to say which limit refused it)."""
        rows = self.db.query(*_bound(_STATE, values))
        if not rows:
            raise revoked_error()
        budget, rpm, tpm, parallel, spend, reserved, in_flight, requests, tokens, reset = rows[0]
        current = dataclasses.replace(key, max_budget=budget, rpm_limit=rpm, tpm_limit=tpm,
                                      max_parallel_requests=parallel)
        return current, Usage(requests=int(requests), tokens=int(tokens),
                              in_flight=int(in_flight), spend=spend, reserved=reserved,
                              budget_reset_at=reset)

    def _sweep(self, key_id: str, now: float) -> int:
        """Free the key's leases that have lapsed; how many there were."""
        return self._release("key_id = :id AND expires_at <= :now",
                             {"id": key_id, "now": now, "cost": 0.0}, tokens=False)

    def _release(self, leases: str, values: dict, tokens: bool) -> int:
        """Delete the leases `leases` selects and take them off the key's row, adding :cost to
        its spend (and correcting its tokens); the number of leases freed."""
        delete = f"DELETE FROM api_key_leases WHERE {leases} RETURNING cost"
        if self.postgres:
            update = _release_statement("(SELECT COALESCE(SUM(cost), 0) FROM l)",
                                        "(SELECT COUNT(*) FROM l)", tokens)
            statement = (f"WITH l AS ({delete}) {update} AND (:cost <> 0 OR :changes OR "
                         "EXISTS (SELECT 1 FROM l)) RETURNING (SELECT COUNT(*) FROM l)")
            rows = self.db.run(*_bound(statement, {**values, "changes": tokens}))
            return int(rows[0][0]) if rows else 0
        with self.db.transaction() as tx:
            freed = tx.fetch(*_bound(delete, values))
            if freed or values["cost"] or tokens:
                tx.execute(*_bound(_release_statement(":freed", ":count", tokens),
                                   {**values, "freed": sum(c for c, in freed),
                                    "count": len(freed)}))
        return len(freed)

    def settle(self, key_id: str, leases: Sequence[str], cost: float, window: int | None,
               token_delta: int, request_delta: int = 0) -> None:
        """Release the leases, add the real cost of their requests to the key's spend, and
        correct the token and request counts of `window` by what they really used (None:
        their tokens and requests are not counted here)."""
        tokens = window is not None and (token_delta != 0 or request_delta != 0)
        if not leases and not cost and not tokens:
            return
        values = {"id": key_id, "cost": cost, "window": window, "delta": token_delta,
                  "requests": request_delta,
                  "leases": list(leases) if self.postgres else dumps(list(leases)).decode()}
        self._release("id = ANY(:leases)" if self.postgres else
                      "id IN (SELECT value FROM json_each(:leases))", values, tokens)

    def settle_many(self, settles: Sequence[Settle]) -> list[BaseException | None]:
        """Settle finished requests together: one statement (or SQLite transaction) per key
        and window, whatever their number; per request, None or what its settling failed
        with."""
        groups: dict[tuple[str, int | None], list[int]] = {}
        for index, one in enumerate(settles):
            groups.setdefault((one.key_id, one.window), []).append(index)
        errors: list[BaseException | None] = [None] * len(settles)
        for (key_id, window), indexes in groups.items():
            members = [settles[i] for i in indexes]
            try:
                self.settle(key_id, [one.lease for one in members if one.lease],
                            sum(one.cost for one in members), window,
                            sum(one.delta for one in members),
                            sum(one.requests for one in members))
            except Exception as exc:
                for i in indexes:
                    errors[i] = exc
        return errors

    def add_spend(self, key_id: str, lease: str | None, cost: float) -> None:
        """Add the real cost of a slice's finished requests to the key's spend while the
        slice (`lease`) stays open: its reservation shrinks by as much, so the key's spend
        plus reservations, and the slice's bound, stay as they were."""
        if self.postgres:
            self.db.execute(*_bound(_ADD_SPEND_PG, {"id": key_id, "lease": lease, "cost": cost}))
            return
        with self.db.transaction() as tx:
            kept = tx.execute(*_bound(_SHRINK_LEASE, {"lease": lease, "cost": cost})) > 0
            tx.execute(*_bound(_ADD_SPEND_SQLITE, {"id": key_id, "cost": cost, "kept": kept}))

    def extend(self, lease: str, until: float) -> None:
        self.db.execute("UPDATE api_key_leases SET expires_at = ? WHERE id = ?", (until, lease))

    def release(self, key_id: str, lease: str) -> None:
        """Drop a lease whose request was refused by another limit after this one admitted it."""
        self.settle(key_id, [lease], 0.0, None, 0)

    def peek(self, key_id: str, now: float) -> Usage:
        """The key's counts in the current window, without counting anything."""
        rows = self.db.query(*_bound(f"SELECT {_REQUESTS}, {_TOKENS} FROM api_keys "
                                     "WHERE id = :id", {"window": window_of(now), "id": key_id}))
        return Usage(requests=int(rows[0][0]), tokens=int(rows[0][1])) if rows else Usage()
