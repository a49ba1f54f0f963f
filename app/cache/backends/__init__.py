"""Where entries, counters and the semantic log live: one interface, two stores.

- disk (diskcache): SQLite files in one folder, shared by every process on the machine.
- redis: shared by every process on every machine that uses the same server.

Both keep: entries (bytes under a key, with a TTL, evicted least recently used beyond
the size bound); hit/miss counters; and the semantic log, an append-only list of
(partition, key, text) that each process tails to keep its own index current. A flush
empties entries and log and bumps a generation number; readers that see it change start
their index again from the new log.
"""
from __future__ import annotations

from typing import NamedTuple, Protocol

LOG_LIMIT = 100_000       # semantic log records kept: older ones are trimmed


class Record(NamedTuple):
    partition: str
    key: str
    text: str


class LogPage(NamedTuple):
    records: list[Record]
    cursor: object            # pass back to `read` for what comes next
    restarted: bool           # the log was flushed: drop what was read before


class Backend(Protocol):
    name: str

    def get(self, key: str) -> bytes | None:
        """The entry, marked as just used; None when absent or expired."""

    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store (or replace) an entry for `ttl` seconds, evicting the least recently used
        entries beyond the size bound."""

    def delete(self, key: str) -> bool: ...

    def flush(self) -> None: ...

    def add_counts(self, counts: dict[str, int]) -> None:
        """Add to the shared counters (hits, semantic_hits, misses)."""

    def stats(self) -> dict[str, int]:
        """entries, bytes, hits, semantic_hits, misses."""

    def append(self, record: Record) -> None:
        """Add to the semantic log."""

    def read(self, cursor: object, limit: int) -> LogPage:
        """Up to `limit` log records after `cursor` (None: from the oldest kept)."""
