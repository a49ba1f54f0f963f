"""GET /spend and /spend/*: what the ledger holds, as JSON or (`?format=csv`) as CSV.

Every endpoint takes `start` and `end` (ISO dates, or date-times; a date as `end` includes
that whole day, UTC). Reads first flush this process's ledger queue, so a client sees its
own requests; other workers' rows arrive within the ledger's flush interval.
"""
from __future__ import annotations

import csv
import io
import sqlite3
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import psycopg
import psycopg_pool
from flask import Blueprint, Response, current_app, request

from app.errors import InvalidRequestError, ProxyError
from app.jsonfast import dumps
from app.usage.ledger import ledger_of
from app.usage.pricing import format_cost
from app.usage.spend import LOG_FIELDS, TOTALS, BadCursor, LogFilter, Spend, Window

bp = Blueprint("spend", __name__)

READ_FLUSH_SECONDS = 2.0
DEFAULT_LOG_LIMIT = 100
MAX_LOG_LIMIT = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DATABASE_ERRORS = (sqlite3.Error, psycopg.Error, psycopg_pool.PoolTimeout)


def _invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid parameter '{param}': {message}.", param=param,
                               code="invalid_value")


def _moment(param: str, end: bool) -> float | None:
    text = request.args.get(param)
    if text is None or text == "":
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise _invalid(param, f"must be an ISO date (YYYY-MM-DD) or date-time, got "
                              f"{text[:64]!r}") from None


def _window() -> Window:
    window = Window(_moment("start", end=False), _moment("end", end=True))
    if window.start is not None and window.end is not None and window.end <= window.start:
        raise _invalid("end", "must not be before start")
    return window


def _integer(param: str, default: int, low: int, high: int) -> int:
    text = request.args.get(param)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise _invalid(param, f"must be an integer from {low} to {high}")
    return int(text)


def _text(param: str) -> str | None:
    """A filter value; NUL can be in no stored value (and PostgreSQL refuses it in a query)."""
    text = request.args.get(param)
    if text is not None and "\x00" in text:
        raise _invalid(param, "must not contain NUL characters")
    return text


def _status() -> int | str | None:
    text = request.args.get("status")
    if text is None or text in ("success", "error"):
        return text
    if text.isdigit() and 100 <= int(text) <= 599:
        return int(text)
    raise _invalid("status", "must be an HTTP status code, 'success' or 'error'")


def _spend() -> Spend:
    ledger = ledger_of(current_app.extensions["switchboard"])
    if ledger is None:
        raise ProxyError("The ledger is not running in this proxy.", status=503,
                         code="ledger_unavailable")
    ledger.flush(READ_FLUSH_SECONDS)
    return Spend(ledger.database)


def _read(query: Callable[[Spend], Any]) -> Any:
    """Run a read; an unreachable or failing database is a 503, not an internal error."""
    if request.args.get("format", "json") not in ("json", "csv"):
        raise _invalid("format", "must be json or csv")
    spend = _spend()
    try:
        return query(spend)
    except DATABASE_ERRORS as exc:
        current_app.logger.error("ledger read failed: %s", exc)
        raise ProxyError("The ledger database did not answer; try again.", status=503,
                         code="ledger_unavailable") from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_cost(value)
    if isinstance(value, (dict, list)):
        return dumps(value).decode()
    text = str(value)
    # A spreadsheet would run a cell that starts like a formula: keep it text.
    return "'" + text if text.startswith(FORMULA_STARTS) and isinstance(value, str) else text


def _respond(name: str, body: dict[str, Any], rows: list[dict[str, Any]],
             columns: tuple[str, ...]) -> Response:
    """`body` as JSON, or `rows` as CSV with a header row when ?format=csv."""
    if request.args.get("format") != "csv":
        return Response(dumps(body), mimetype="application/json")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def _range() -> dict[str, str | None]:
    return {"start": request.args.get("start") or None, "end": request.args.get("end") or None}


# group -> (CSV file name, leading columns)
GROUP_PAGES = {"model": ("spend-models", ("model",)), "user": ("spend-users", ("user",)),
               "key_id": ("spend-keys", ("key_id", "key_alias")), "api": ("spend-apis", ("api",))}


def _grouped(by: str) -> Response:
    window = _window()
    rows = _read(lambda spend: spend.grouped(by, window))
    name, columns = GROUP_PAGES[by]
    return _respond(name, {**_range(), "data": rows}, rows, (*columns, *TOTALS))


@bp.get("/spend")
def totals():
    """Totals; `?group_by=model|user|key_id|api` answers as the /spend/<group> pages do."""
    group = request.args.get("group_by")
    if group is not None:
        if group not in GROUP_PAGES:
            raise _invalid("group_by", f"must be one of {', '.join(GROUP_PAGES)}")
        return _grouped(group)
    window = _window()
    body = {**_range(), **_read(lambda spend: spend.totals(window))}
    return _respond("spend", body, [body], ("start", "end", *TOTALS))


@bp.get("/spend/models")
def per_model():
    return _grouped("model")


@bp.get("/spend/users")
def per_user():
    return _grouped("user")


@bp.get("/spend/keys")
def per_key():
    return _grouped("key_id")


@bp.get("/spend/apis")
def per_api():
    """Per face the clients used: chat, messages, responses, embeddings, completions."""
    return _grouped("api")


@bp.get("/spend/daily")
def per_day():
    window = _window()
    days = _read(lambda spend: spend.daily(window))
    rows = [{"date": day["date"], **model} for day in days for model in day["models"]]
    return _respond("spend-daily", {**_range(), "data": days}, rows, ("date", "model", *TOTALS))


@bp.get("/spend/latency")
def latency():
    window = _window()
    rows = _read(lambda spend: spend.latency(window))
    return _respond("spend-latency", {**_range(), "data": rows}, rows,
                    ("model", "requests", "p50_ms", "p95_ms"))


@bp.get("/spend/logs")
def logs():
    window = _window()
    limit = _integer("limit", DEFAULT_LOG_LIMIT, 1, MAX_LOG_LIMIT)
    filters = LogFilter(_text("model"), _text("user"), _text("key_id"), _status(), _text("api"))
    cursor = request.args.get("cursor") or None

    def page(spend: Spend):
        try:
            return spend.logs(window, filters, limit, cursor)
        except BadCursor:
            raise _invalid("cursor", "is not a cursor this proxy gave out") from None

    rows, next_cursor = _read(page)
    return _respond("spend-logs", {**_range(), "data": rows, "next_cursor": next_cursor}, rows,
                    LOG_FIELDS)
