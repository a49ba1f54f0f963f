"""The ledger: one row per request (answered or failed, streamed or not, cached or not),
appended to a local journal on the request path (app/usage/journal.py) and written to the
database off it by a batching background writer.

The table lives in the proxy's database (SQLite in the data directory, or PostgreSQL with
DATABASE_URL) and is created and migrated by the proxy itself at start. Prompts and
completions are kept only when the operator turns `ledger.store_messages` on, and never
while the top-level `redact_messages` is set.
"""
from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from uuid_utils import uuid7
from marshmallow import RAISE, Schema, fields, validate

from app.config import ConfigError
from app.service.events import RequestEvent
from app.storage.database import Database, database_url
from app.usage.journal import Journal, Segment
from app.usage.writer import BatchWriter

JOURNAL_DIR = "ledger-journal"
REPLAY_SECONDS = 5.0      # how often a process stores what only journals hold
PROBE_SECONDS = 1.0       # readiness waits this long for the database

MIGRATIONS = [[
    "CREATE TABLE ledger ("
    " id TEXT PRIMARY KEY, request_id TEXT NOT NULL,"
    " started_at DOUBLE PRECISION NOT NULL, day TEXT NOT NULL,"
    " requested_model TEXT, model TEXT, provider TEXT, deployment TEXT,"
    " key_id TEXT, key_alias TEXT, end_user TEXT, stream SMALLINT NOT NULL,"
    " prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,"
    " cached_tokens BIGINT NOT NULL, cache_creation_tokens BIGINT NOT NULL,"
    " reasoning_tokens BIGINT NOT NULL, usage_estimated SMALLINT NOT NULL,"
    " cost DOUBLE PRECISION NOT NULL, saved_cost DOUBLE PRECISION NOT NULL,"
    " latency_ms DOUBLE PRECISION NOT NULL, ttft_ms DOUBLE PRECISION,"
    " overhead_ms DOUBLE PRECISION, cache TEXT NOT NULL, status INTEGER NOT NULL,"
    " error_type TEXT, error_code TEXT, error_message TEXT, finish_reason TEXT,"
    " attempts INTEGER NOT NULL, attempts_detail TEXT NOT NULL,"
    " retries INTEGER NOT NULL, fallbacks INTEGER NOT NULL,"
    " metadata TEXT, messages TEXT, response TEXT)",
    "CREATE INDEX ledger_started_at ON ledger (started_at)",
    "CREATE INDEX ledger_user ON ledger (end_user, started_at)",
    "CREATE INDEX ledger_key ON ledger (key_id, started_at)",
], [
    # A model without a known price: its cost is 0 in the row but not free.
    "ALTER TABLE ledger ADD COLUMN cost_unknown SMALLINT NOT NULL DEFAULT 0",
], [
    # The face the client used (chat, messages, responses, embeddings, completions).
    "ALTER TABLE ledger ADD COLUMN api TEXT NOT NULL DEFAULT 'chat'",
]]

COLUMNS = ("id", "request_id", "started_at", "day", "requested_model", "model", "provider",
           "deployment", "key_id", "key_alias", "end_user", "stream", "prompt_tokens",
           "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
           "usage_estimated", "cost", "saved_cost", "latency_ms", "ttft_ms", "overhead_ms",
           "cache", "status", "error_type", "error_code", "error_message", "finish_reason",
           "attempts", "attempts_detail", "retries", "fallbacks", "metadata", "messages",
           "response", "cost_unknown", "api")
# The row id is made once per event, so a batch retried after an unclear failure (the
# commit landed, the connection dropped) cannot count a request twice. It is a UUIDv7, which
# starts with the time: rows are appended at the end of the primary-key index instead of on a
# random page of it (with a random id each insert cost 3x the CPU at 700k rows, and more as
# the ledger grows).
def insert_statement(columns) -> str:
    return (f"INSERT INTO ledger ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            " ON CONFLICT (id) DO NOTHING")


INSERT = insert_statement(COLUMNS)

CACHE_HITS = ("hit", "semantic-hit")
TEXT_LIMIT = 2000          # longest identifier or error message kept
BIGINT_MAX = 2 ** 63 - 1


class LedgerConfig(Schema):
    """The `ledger:` config section."""

    class Meta:
        unknown = RAISE

    store_messages = fields.Boolean(load_default=False)
    batch_size = fields.Integer(load_default=500, validate=validate.Range(min=1, max=10_000))
    flush_interval = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=60))
    queue_size = fields.Integer(load_default=10_000, validate=validate.Range(min=1))


def _text(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    """Text as both engines accept it (PostgreSQL refuses NUL characters), bounded."""
    if value is None:
        return None
    return str(value).replace("\x00", "")[:limit]


def _count(value: Any) -> int:
    return min(max(int(value or 0), 0), BIGINT_MAX)


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode().replace(
        "\\u0000", "")


def attempts_of(event: RequestEvent) -> list[dict]:
    """Every route tried, in order: the failed ones, then the one that answered (none for a
    cache hit or a request refused before any call)."""
    tried = [dict(attempt) for attempt in event.attempts]
    if event.model is not None and event.cache not in CACHE_HITS:
        tried.append({"model": event.model, "status": event.status, "error": event.error_message})
    return tried


def row_of(event: RequestEvent, store_messages: bool) -> tuple:
    """The ledger row for one event, in COLUMNS order."""
    attempts = attempts_of(event)
    day = datetime.fromtimestamp(event.started_at, timezone.utc).date().isoformat()
    return (
        uuid7().hex, _text(event.request_id), float(event.started_at), day,
        _text(event.requested_model), _text(event.model), _text(event.provider),
        _text(event.deployment), _text(event.key_id), _text(event.key_alias), _text(event.user),
        int(event.stream), _count(event.prompt_tokens), _count(event.completion_tokens),
        _count(event.cached_tokens), _count(event.cache_creation_tokens),
        _count(event.reasoning_tokens), int(event.usage_estimated), float(event.cost),
        float(event.saved_cost), float(event.latency_ms), event.ttft_ms, event.overhead_ms,
        _text(event.cache), int(event.status), _text(event.error_type), _text(event.error_code),
        _text(event.error_message), _text(event.finish_reason), len(attempts), _json(attempts),
        int(event.retries), int(event.fallbacks), _json(event.metadata),
        _json(event.messages) if store_messages else None,
        _json(event.response) if store_messages else None, int(event.cost_unknown),
        _text(event.api),
    )


class Ledger:
    """The event consumer: `handle` journals the row and enqueues it (or, when the queue is
    full, leaves it in the journal only); the writer thread inserts batches, and a replay
    thread stores what only journals hold."""

    def __init__(self, database: Database, store_messages: bool = False, batch_size: int = 500,
                 flush_interval: float = 1.0, queue_size: int = 10_000,
                 journal: Journal | None = None):
        self.database = database
        self.store_messages = store_messages
        self.journal = journal
        self.writer = BatchWriter("ledger", self._insert, batch_size, flush_interval, queue_size)
        self._replaying_in: int | None = None    # the pid whose replay thread runs
        self._probe: Database | None = None        # short timeouts, for readiness

    def handle(self, event: RequestEvent) -> None:
        row = row_of(event, self.store_messages)
        segment = None
        if self.journal is not None:
            segment = self.journal.append(dict(zip(COLUMNS, row)))
            if self._replaying_in != os.getpid():
                self.start()
            if segment is not None and self.writer.full:
                self.journal.spill(segment)   # never wait for the database: it is on disk
                return
        self.writer.put((row, segment))

    def start(self) -> None:
        """Look for journals of stopped processes now and every REPLAY_SECONDS (a gunicorn
        worker calls this when it starts; the first request does too)."""
        if self.journal is None or self._replaying_in == os.getpid():
            return
        self._replaying_in = os.getpid()
        threading.Thread(target=self._replay_forever, name="ledger-replay", daemon=True).start()

    def ping(self) -> None:
        """Raise unless rows can be stored now: the database answers within PROBE_SECONDS and
        the writer's last batch went in."""
        if self._probe is None:
            self._probe = Database(self.database.url, timeout=PROBE_SECONDS)
        self._probe.query("SELECT 1 FROM ledger LIMIT 1")
        if not self.writer.healthy:
            raise ConnectionError("the ledger writer cannot store its rows")

    def replay(self) -> int:
        """Store rows only the journal holds: this process's spilled rows, and the journals of
        stopped processes; the number of rows read back."""
        if self.journal is None:
            return 0
        return (self.journal.replay_spilled(self._insert_journaled)
                + self.journal.replay(self._insert_journaled))

    def flush(self, timeout: float) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float) -> None:
        self.writer.close(timeout)

    def _replay_forever(self) -> None:
        pid = os.getpid()
        while self._replaying_in == pid:
            self.replay()
            time.sleep(REPLAY_SECONDS)

    def _insert(self, items: list[tuple[tuple, Segment | None]]) -> None:
        if self.journal is not None:
            self.journal.sync()
        with self.database.transaction() as tx:
            tx.executemany(INSERT, [row for row, _ in items])
        if self.journal is not None:
            self.journal.stored(segment for _, segment in items)

    def _insert_journaled(self, rows: list[dict]) -> None:
        """Rows read back from a journal, possibly written by an older version of the proxy:
        each is stored with the columns it has (the others take their defaults)."""
        by_columns: dict[tuple, list[tuple]] = {}
        for row in rows:
            columns = tuple(name for name in COLUMNS if name in row)
            by_columns.setdefault(columns, []).append(tuple(row[name] for name in columns))
        with self.database.transaction() as tx:
            for columns, values in by_columns.items():
                tx.executemany(insert_statement(columns), values)


def build_ledger(service) -> Ledger:
    """The ledger on the proxy's database, its schema brought up to date first (once, in the
    gunicorn master before the workers fork; the master's connection is closed after)."""
    settings = service.settings
    config = settings.section("ledger", LedgerConfig())
    url = database_url(settings.env, settings.data_dir)
    try:
        database = Database(url)
        database.migrate("ledger", MIGRATIONS)
    except Exception as exc:
        where = "DATABASE_URL" if settings.env.get("DATABASE_URL") else url
        raise ConfigError(f"the ledger database ({where}) cannot be used: "
                          f"{type(exc).__name__}: {exc}") from None
    store_messages = config.pop("store_messages") and not settings.redact_messages
    ledger = Ledger(database, store_messages, journal=Journal(Path(settings.data_dir) / JOURNAL_DIR),
                    **config)
    ledger.replay()   # what a process killed before this start left behind
    database.close()
    return ledger


def ledger_of(service) -> Ledger | None:
    return next((c for c in service.consumers if isinstance(c, Ledger)), None)
