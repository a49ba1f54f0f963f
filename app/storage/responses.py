"""Stored Responses-API responses (`store: true`), in the proxy's own database.

A stored response keeps its answer and the whole context it was answered from (earlier
turns included), so `previous_response_id` continues the conversation on any provider.
Each item of a stored response (its output and its listed input items) is indexed by id,
so an `item_reference` input item finds it.
Each row belongs to the virtual key that made it (NULL: the master key or an open proxy);
rows older than the retention are never served and are purged.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from app.storage.database import Database, database_url

MIGRATIONS = [
    ["CREATE TABLE IF NOT EXISTS stored_responses ("
     "id TEXT PRIMARY KEY, key_id TEXT, created_at DOUBLE PRECISION NOT NULL, "
     "response TEXT NOT NULL, input_items TEXT NOT NULL)",
     "CREATE INDEX IF NOT EXISTS stored_responses_created_at ON stored_responses (created_at)"],
    ["CREATE TABLE IF NOT EXISTS stored_response_items ("
     "item_id TEXT PRIMARY KEY, response_id TEXT NOT NULL)",
     "CREATE INDEX IF NOT EXISTS stored_response_items_response "
     "ON stored_response_items (response_id)"],
]
PURGE_EVERY_SECONDS = 3600.0
ITEM_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
                    "reasoning": "rs"}


class ResponsesSection(Schema):
    """`responses:` in the config file."""

    class Meta:
        unknown = RAISE

    retention_days = fields.Float(load_default=30.0, validate=validate.Range(min=0, min_inclusive=False))


def retention_days(settings) -> float:
    """`responses.retention_days` from the config (a bad value stops the start)."""
    return settings.section("responses", ResponsesSection())["retention_days"]


@dataclass
class Owner:
    """Who asks: a virtual key's id, or None for the master key / an open proxy."""

    key_id: str | None
    master: bool = False

    def sees(self, key_id: str | None) -> bool:
        return self.master or key_id == self.key_id


@dataclass
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    key_id: str | None

    def listed_items(self) -> list[dict[str, Any]]:
        """The input items as `input_items` lists them: each typed and with an id (its own,
        or one derived from the response's id and its position, stable across reads)."""
        stem = self.response["id"].split("_", 1)[-1]
        listed = []
        for position, item in enumerate(self.input_items):
            kind = item.get("type", "message")
            prefix = ITEM_ID_PREFIXES.get(kind, "item")
            listed.append({"id": f"{prefix}_{stem}_{position}", **item, "type": kind})
        return listed

    def conversation(self) -> list[dict[str, Any]]:
        """The items a follow-up continues from: this response's context and its output."""
        return [*self.input_items, *self.response.get("output", [])]

    def items(self) -> list[dict[str, Any]]:
        """Every item of this response with an id: the listed input items, then the output."""
        return [*self.listed_items(),
                *(item for item in self.response.get("output", []) if item.get("id"))]


class ResponseStore:
    def __init__(self, database: Database, retention_days: float):
        self.database = database
        self.retention = retention_days * 86400.0
        self._purged_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "ResponseStore":
        database = Database(database_url(settings.env, settings.data_dir))
        database.migrate("responses", MIGRATIONS)
        return cls(database, retention_days(settings))

    def save(self, response: dict[str, Any], input_items: list[dict[str, Any]],
             key_id: str | None) -> None:
        stored = StoredResponse(response, input_items, key_id)
        with self.database.transaction() as tx:
            tx.execute(
                "INSERT INTO stored_responses (id, key_id, created_at, response, input_items) "
                "VALUES (?, ?, ?, ?, ?)",
                (response["id"], key_id, time.time(), json.dumps(response),
                 json.dumps(input_items)))
            # An item seen before (an earlier output sent back as input) keeps its first home.
            tx.executemany("INSERT INTO stored_response_items (item_id, response_id) "
                           "VALUES (?, ?) ON CONFLICT (item_id) DO NOTHING",
                           [(item["id"], response["id"]) for item in stored.items()])
        self._purge_now_and_then()

    def get(self, response_id: str, owner: Owner) -> StoredResponse | None:
        """The response if it exists, has not expired and `owner` may see it."""
        rows = self.database.query(
            "SELECT key_id, response, input_items FROM stored_responses "
            "WHERE id = ? AND created_at >= ?", (response_id, self._oldest()))
        if not rows or not owner.sees(rows[0][0]):
            return None
        key_id, response, input_items = rows[0]
        return StoredResponse(json.loads(response), json.loads(input_items), key_id)

    def item(self, item_id: str, owner: Owner) -> dict[str, Any] | None:
        """The stored item with this id if its response is live and `owner` may see it."""
        rows = self.database.query(
            "SELECT response_id FROM stored_response_items WHERE item_id = ?", (item_id,))
        stored = self.get(rows[0][0], owner) if rows else None
        if stored is None:
            return None
        return next((item for item in stored.items() if item["id"] == item_id), None)

    def known_item(self, item_id: str) -> bool:
        """Whether any key stored an item with this id (see `known`)."""
        return bool(self.database.query(
            "SELECT 1 FROM stored_response_items WHERE item_id = ?", (item_id,)))

    def known(self, response_id: str) -> bool:
        """Whether any key stored this response (so it is never passed on to OpenAI for
        another key to continue)."""
        return bool(self.database.query("SELECT 1 FROM stored_responses WHERE id = ?",
                                        (response_id,)))

    def delete(self, response_id: str, owner: Owner) -> bool:
        if self.get(response_id, owner) is None:
            return False
        with self.database.transaction() as tx:
            tx.execute("DELETE FROM stored_response_items WHERE response_id = ?", (response_id,))
            return tx.execute("DELETE FROM stored_responses WHERE id = ?", (response_id,)) > 0

    def purge(self) -> int:
        """Remove responses older than the retention; the number removed."""
        with self.database.transaction() as tx:
            removed = tx.execute("DELETE FROM stored_responses WHERE created_at < ?",
                                 (self._oldest(),))
            tx.execute("DELETE FROM stored_response_items WHERE response_id NOT IN "
                       "(SELECT id FROM stored_responses)")
        return removed

    def _oldest(self) -> float:
        return time.time() - self.retention

    def _purge_now_and_then(self) -> None:
        with self._lock:
            if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS and self._purged_at:
                return
            self._purged_at = time.monotonic()
        self.purge()
