"""Spend read from the ledger: totals, per model / user / key / day, latency percentiles and
the rows themselves. Every value a caller chooses is a bound parameter; the grouping
expressions come from a fixed table here."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from app.storage.database import Database
from app.usage.ledger import COLUMNS

AGGREGATES = ("COUNT(*), SUM(CASE WHEN error_type IS NULL THEN 0 ELSE 1 END), "
              "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost), "
              "SUM(saved_cost), SUM(CASE WHEN cache IN ('hit', 'semantic-hit') THEN 1 ELSE 0 END), "
              "SUM(CASE WHEN cache = 'miss' THEN 1 ELSE 0 END), SUM(cost_unknown)")
# cost_unknown: how many requests had no known price (their cost is not in `cost`).
TOTALS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "cost",
          "saved_cost", "cache_hits", "cache_misses", "cost_unknown")
MONEY = ("cost", "saved_cost")
# What a request is counted under: the model that answered, else the one asked for.
MODEL = "COALESCE(model, requested_model)"
GROUPS = {"model": MODEL, "user": "end_user", "key_id": "key_id", "api": "api"}
PERCENTILES = (50, 95)
LOG_COLUMNS = tuple(column for column in COLUMNS if column != "day")  # day: derived
# The fields of one log row as the API gives them.
LOG_FIELDS = ("id", "request_id", "time",
              *("user" if column == "end_user" else column for column in LOG_COLUMNS[2:]))
JSON_COLUMNS = ("attempts_detail", "metadata", "messages", "response")
FLAG_COLUMNS = ("stream", "usage_estimated", "cost_unknown")


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    """start <= started_at < end, unix seconds; None leaves that side open."""

    start: float | None = None
    end: float | None = None

    def where(self) -> tuple[list[str], list[Any]]:
        clauses, params = [], []
        if self.start is not None:
            clauses.append("started_at >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("started_at < ?")
            params.append(self.end)
        return clauses, params


@dataclass(frozen=True)
class LogFilter:
    model: str | None = None       # the model that answered or the one asked for
    user: str | None = None
    key_id: str | None = None
    status: int | str | None = None  # an HTTP status, "success" or "error"
    api: str | None = None         # the face: chat, messages, ...

    def where(self) -> tuple[list[str], list[Any]]:
        clauses, params = [], []
        if self.model is not None:
            clauses.append("(model = ? OR requested_model = ?)")
            params += [self.model, self.model]
        for column, value in (("end_user", self.user), ("key_id", self.key_id),
                              ("api", self.api)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.status == "success":
            clauses.append("error_type IS NULL")
        elif self.status == "error":
            clauses.append("error_type IS NOT NULL")
        elif self.status is not None:
            clauses.append("status = ?")
            params.append(self.status)
        return clauses, params


def _sql_where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _totals(values) -> dict[str, Any]:
    """Aggregates as JSON numbers (PostgreSQL sums integers as Decimal)."""
    out = {}
    for name, value in zip(TOTALS, values):
        out[name] = round(float(value or 0), 12) if name in MONEY else int(value or 0)
    return out


def iso_time(seconds: float) -> str:
    text = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def encode_cursor(started_at: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([started_at, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        started_at, row_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(started_at, (int, float)) and not isinstance(started_at, bool) \
                and isinstance(row_id, str):
            return float(started_at), row_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise BadCursor("not a cursor this proxy gave out")


class Spend:
    def __init__(self, database: Database):
        self.database = database

    def totals(self, window: Window) -> dict[str, Any]:
        clauses, params = window.where()
        row = self.database.query(f"SELECT {AGGREGATES} FROM ledger{_sql_where(clauses)}", params)
        return _totals(row[0])

    def grouped(self, by: str, window: Window) -> list[dict[str, Any]]:
        """Totals per model, user or key id, the biggest spender first."""
        expression = GROUPS[by]
        clauses, params = window.where()
        extra = ", MAX(key_alias)" if by == "key_id" else ""
        rows = self.database.query(
            f"SELECT {expression}{extra}, {AGGREGATES} FROM ledger{_sql_where(clauses)} "
            f"GROUP BY {expression} ORDER BY SUM(cost) DESC, COUNT(*) DESC, {expression}", params)
        if by == "key_id":
            return [{"key_id": r[0], "key_alias": r[1], **_totals(r[2:])} for r in rows]
        return [{by: r[0], **_totals(r[1:])} for r in rows]

    def daily(self, window: Window) -> list[dict[str, Any]]:
        """Per UTC day, its totals and the same per model within it (for a stacked chart)."""
        clauses, params = window.where()
        rows = self.database.query(
            f"SELECT day, {MODEL}, {AGGREGATES} FROM ledger{_sql_where(clauses)} "
            f"GROUP BY day, {MODEL} ORDER BY day, SUM(cost) DESC, {MODEL}", params)
        days: dict[str, dict[str, Any]] = {}
        for day, model, *values in rows:
            entry = days.setdefault(day, {"date": day, **_totals([0] * len(TOTALS)), "models": []})
            totals = _totals(values)
            entry["models"].append({"model": model, **totals})
            for name, value in totals.items():
                entry[name] = round(entry[name] + value, 12) if name in MONEY else entry[name] + value
        return list(days.values())

    def latency(self, window: Window) -> list[dict[str, Any]]:
        """p50 and p95 (nearest rank) of latency per model, over answered requests that
        reached a model (cache hits excluded: they never do)."""
        clauses, params = window.where()
        clauses += ["error_type IS NULL", "model IS NOT NULL", "cache NOT IN ('hit', 'semantic-hit')"]
        ranks = " OR ".join(f"rn = (n * {p} + 99) / 100" for p in PERCENTILES)
        rows = self.database.query(
            "SELECT model, n, rn, latency_ms FROM (SELECT model, latency_ms, "
            "ROW_NUMBER() OVER (PARTITION BY model ORDER BY latency_ms) AS rn, "
            f"COUNT(*) OVER (PARTITION BY model) AS n FROM ledger{_sql_where(clauses)}) ranked "
            f"WHERE {ranks} ORDER BY model, rn", params)
        models: dict[str, dict[str, Any]] = {}
        for model, n, rank, latency in rows:
            entry = models.setdefault(model, {"model": model, "requests": int(n)})
            for p in PERCENTILES:
                if rank == (n * p + 99) // 100:
                    entry[f"p{p}_ms"] = round(float(latency), 3)
        return list(models.values())

    def logs(self, window: Window, filters: LogFilter, limit: int,
             cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Rows newest first, `limit` at a time; the cursor continues after the last one."""
        clauses, params = window.where()
        more, more_params = filters.where()
        clauses, params = clauses + more, params + more_params
        if cursor is not None:
            started_at, row_id = decode_cursor(cursor)
            clauses.append("(started_at < ? OR (started_at = ? AND id < ?))")
            params += [started_at, started_at, row_id]
        rows = self.database.query(
            f"SELECT {', '.join(LOG_COLUMNS)} FROM ledger{_sql_where(clauses)} "
            "ORDER BY started_at DESC, id DESC LIMIT ?", [*params, limit + 1])
        page = [self._log_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1][2], rows[limit - 1][0]) \
            if len(rows) > limit else None
        return page, next_cursor

    @staticmethod
    def _log_row(row: tuple) -> dict[str, Any]:
        record = dict(zip(LOG_COLUMNS, row))
        record["time"] = iso_time(record["started_at"])
        record["user"] = record.pop("end_user")
        for name in JSON_COLUMNS:
            if record[name] is not None:
                record[name] = orjson.loads(record[name])
        for name in FLAG_COLUMNS:
            record[name] = bool(record[name])
        return {name: record[name] for name in LOG_FIELDS}
