"""The key table: each key's hash, allowed models, limits, budget and spend.

Every statement takes its values as bound parameters. Nothing here caches a key: the key
service keeps what it read for key_refresh_seconds (app/keys/availability.py).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from app.jsonfast import dumps, loads
from app.keys.keygen import key_hash, key_id_of, matches, new_key
from app.storage.database import Database

DURATION_HINT = "a duration such as 30s, 15m, 12h or 30d"
_DURATION = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

MIGRATIONS = [[
    "CREATE TABLE api_keys ("
    " id TEXT PRIMARY KEY, key_hash TEXT NOT NULL, alias TEXT, models TEXT NOT NULL,"
    " max_budget DOUBLE PRECISION, budget_duration TEXT, budget_reset_at DOUBLE PRECISION,"
    " spend DOUBLE PRECISION NOT NULL DEFAULT 0, rpm_limit BIGINT, tpm_limit BIGINT,"
    " max_parallel_requests BIGINT, expires_at DOUBLE PRECISION, metadata TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
    # Requests in flight: their number (max_parallel_requests) and reserved cost (budgets).
    # A lease outlives a crashed worker only until expires_at.
    "CREATE TABLE api_key_leases ("
    " id TEXT PRIMARY KEY, key_id TEXT NOT NULL, cost DOUBLE PRECISION NOT NULL,"
    " expires_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX api_key_leases_by_key ON api_key_leases (key_id)",
    # Fixed one-minute windows of requests (rpm) and tokens (tpm), when Redis is not in use
    # (on the key's row since the next step).
    "CREATE TABLE api_key_windows ("
    " key_id TEXT NOT NULL, kind TEXT NOT NULL, window_start BIGINT NOT NULL,"
    " used BIGINT NOT NULL, PRIMARY KEY (key_id, kind))",
], [
    # Each key's counters on its own row, so that admitting a request is one conditional
    # UPDATE (app/keys/sql_counters.py): the cost reserved by its requests in flight, their
    # number, and the current minute's requests and tokens (which start over here).
    "ALTER TABLE api_keys ADD COLUMN reserved DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ALTER TABLE api_keys ADD COLUMN in_flight BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE api_keys ADD COLUMN window_start BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE api_keys ADD COLUMN window_requests BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE api_keys ADD COLUMN window_tokens BIGINT NOT NULL DEFAULT 0",
    "UPDATE api_keys SET reserved = (SELECT COALESCE(SUM(cost), 0) FROM api_key_leases"
    " WHERE api_key_leases.key_id = api_keys.id), in_flight = (SELECT COUNT(*) FROM"
    " api_key_leases WHERE api_key_leases.key_id = api_keys.id)",
    "DROP TABLE api_key_windows",
], [
    # Leases are looked up by their id only, but when a refused admission frees those of a
    # crashed worker (few rows: requests in flight): one index less to write per request.
    "DROP INDEX api_key_leases_by_key",
]]

_COLUMNS = ("id", "alias", "models", "max_budget", "budget_duration", "budget_reset_at", "spend",
            "rpm_limit", "tpm_limit", "max_parallel_requests", "expires_at", "metadata",
            "created_at", "updated_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM api_keys"
_UNKNOWN_KEY_HASH = key_hash(new_key()[1])  # no stored key has it
# What an update may change; the API schema admits no other field.
_SETTABLE = ("alias", "models", "max_budget", "budget_duration", "rpm_limit", "tpm_limit",
             "max_parallel_requests", "expires_at", "metadata")


def duration_seconds(text: str) -> int:
    """"30d" -> 2592000; units s, m, h, d. ValueError for anything else."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not {DURATION_HINT}: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class KeyRecord:
    id: str
    alias: str | None = None
    models: tuple[str, ...] = ()          # empty: every model
    max_budget: float | None = None
    budget_duration: str | None = None
    budget_reset_at: float | None = None
    spend: float = 0.0
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    expires_at: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_row(cls, row: tuple) -> "KeyRecord":
        values = dict(zip(_COLUMNS, row))
        values["models"] = tuple(loads(values["models"]))
        values["metadata"] = loads(values["metadata"])
        return cls(**values)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def budget_seconds(self) -> int | None:
        return duration_seconds(self.budget_duration) if self.budget_duration else None

    @property
    def label(self) -> str:
        return self.alias or self.id

    def info(self, now: float) -> dict[str, Any]:
        """The admin view of a key: everything but its hash (the key itself is never kept)."""
        reset_due = self.budget_reset_at is not None and self.budget_reset_at <= now
        return {
            "key_id": self.id, "alias": self.alias, "models": list(self.models),
            "max_budget": self.max_budget, "budget_duration": self.budget_duration,
            "budget_reset_at": None if reset_due else iso(self.budget_reset_at),
            "spend": 0.0 if reset_due else self.spend,
            "rpm_limit": self.rpm_limit, "tpm_limit": self.tpm_limit,
            "max_parallel_requests": self.max_parallel_requests,
            "expires": iso(self.expires_at), "expired": self.expired(now),
            "metadata": self.metadata,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


def _stored(name: str, value: Any) -> Any:
    if name == "models":
        return dumps(list(value or ())).decode()
    if name == "metadata":
        return dumps(value or {}).decode()
    return value


class KeyStore:
    def __init__(self, database: Database):
        self.db = database

    def create(self, settings: dict[str, Any]) -> tuple[KeyRecord, str]:
        """A new key from validated settings; returns its record and the key (shown once)."""
        key_id, key = new_key()
        now = time.time()
        values = {name: _stored(name, settings.get(name)) for name in _SETTABLE}
        values["expires_at"] = settings.get("expires")
        duration = settings.get("budget_duration")
        values.update(id=key_id, key_hash=key_hash(key), spend=0.0, created_at=now,
                      updated_at=now,
                      budget_reset_at=now + duration_seconds(duration) if duration else None)
        names = list(values)
        self.db.execute(f"INSERT INTO api_keys ({', '.join(names)}) "
                        f"VALUES ({', '.join('?' for _ in names)})", [values[n] for n in names])
        return self.get(key_id), key

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self.db.query(f"{_SELECT} WHERE id = ?", (key_id,))
        return KeyRecord.from_row(rows[0]) if rows else None

    def authenticate(self, token: str) -> KeyRecord | None:
        """The key's record when `token` is a live key's exact text; None otherwise."""
        key_id = key_id_of(token)
        if key_id is None:
            return None
        rows = self.db.query(f"SELECT key_hash, {', '.join(_COLUMNS)} FROM api_keys WHERE id = ?",
                             (key_id,))
        # An unknown id is compared against a stand-in hash, so that it takes as long to
        # refuse as a wrong secret: timing tells an attacker nothing about which ids exist.
        if not matches(token, rows[0][0] if rows else _UNKNOWN_KEY_HASH) or not rows:
            return None
        return KeyRecord.from_row(rows[0][1:])

    def resolve(self, key_id: str | None, key: str | None) -> KeyRecord | None:
        """A key named by its id or by the key itself (admin look-ups)."""
        if key is not None:
            return self.authenticate(key)
        return self.get(key_id) if key_id is not None else None

    def list(self, limit: int, offset: int) -> list[KeyRecord]:
        rows = self.db.query(f"{_SELECT} ORDER BY created_at, id LIMIT ? OFFSET ?",
                             (limit, offset))
        return [KeyRecord.from_row(row) for row in rows]

    def update(self, key_id: str, changes: dict[str, Any]) -> KeyRecord | None:
        """Change the given fields; a new budget_duration starts a new budget period now."""
        changes = dict(changes)
        if "expires" in changes:
            changes["expires_at"] = changes.pop("expires")
        values = {name: _stored(name, changes[name]) for name in _SETTABLE if name in changes}
        now = time.time()
        if "budget_duration" in changes:
            duration = changes["budget_duration"]
            values["budget_reset_at"] = now + duration_seconds(duration) if duration else None
        values["updated_at"] = now
        assignments = ", ".join(f"{name} = ?" for name in values)
        touched = self.db.execute(f"UPDATE api_keys SET {assignments} WHERE id = ?",
                                  [*values.values(), key_id])
        return self.get(key_id) if touched else None

    def delete(self, key_ids: list[str]) -> list[str]:
        """Remove keys and their counters; the ids that existed."""
        deleted = []
        with self.db.transaction() as tx:
            for key_id in dict.fromkeys(key_ids):
                if tx.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)):
                    deleted.append(key_id)
                tx.execute("DELETE FROM api_key_leases WHERE key_id = ?", (key_id,))
        return deleted
