"""The embedded backend: diskcache folders that every process on the machine opens.

`entries/` holds the answers, with per-entry expiry and a size bound. Eviction is least
recently used to within REFRESH seconds: diskcache evicts the least recently *written* entry,
and a read re-writes an entry last written more than REFRESH seconds ago. (diskcache's own
LRU policy writes on every read, so every hit would queue for SQLite's single write lock;
under load that made hits wait, then time out.) `meta/` holds the shared counters and the
semantic log: record n under "log:<n>", its number taken from the "log:seq" counter in the
same transaction, so a reader never sees a number without its record. diskcache reopens
its SQLite connections after a fork, so a cache built in gunicorn's master works in every
worker. Timeouts are short: a locked or broken database is a fault, never a long wait.

Writes run on a native thread of their own (app/offload.py): waiting for SQLite's write lock,
which another worker may hold, sleeps in C, and under gevent that froze every request of the
worker (a hit refreshing its entry, the counters' write once a second) for as long. Reads
never wait for the lock (WAL) and stay where they are.
"""
from __future__ import annotations

import os
import threading
import time
from typing import NamedTuple

import diskcache

from app.cache.backends import LOG_LIMIT, LogPage, Record
from app.offload import NativeThread

TIMEOUT = 1.0           # seconds SQLite may wait for a lock
REFRESH = 1.0           # seconds within which reads of an entry count as one use
COUNTERS = ("hits", "semantic_hits", "misses")
CULL_BATCH = 10         # entries diskcache's cull() removes per round
# SQLite pages each connection keeps (diskcache's default is 8,192, 32 MB). diskcache opens
# one connection per thread, and a gthread worker may run hundreds; reads go through mmap.
PAGE_CACHE = 256


class _Cursor(NamedTuple):
    generation: int
    position: int


class DiskBackend:
    name = "disk"

    def __init__(self, directory: str, max_bytes: int):
        self.directory = directory
        self.max_bytes = max_bytes
        self._entries = None
        self._meta = None
        self._lock = threading.Lock()
        self._refreshed: dict[str, float] = {}
        self._writes = NativeThread()

    def _open(self):
        """Open lazily: a folder that cannot be created is a fault on use, not a crash at start."""
        if self._entries is None:
            os.makedirs(self.directory, exist_ok=True)
            self._meta = diskcache.Cache(os.path.join(self.directory, "meta"), timeout=TIMEOUT,
                                         eviction_policy="none", tag_index=True,
                                         sqlite_cache_size=PAGE_CACHE)
            self._entries = diskcache.Cache(
                os.path.join(self.directory, "entries"), timeout=TIMEOUT, cull_limit=1,
                eviction_policy="least-recently-stored", size_limit=self.max_bytes,
                sqlite_cache_size=PAGE_CACHE)
        return self._entries, self._meta

    def get(self, key: str) -> bytes | None:
        entries, _ = self._open()
        value, expires, used = entries.get(key, expire_time=True, tag=True)
        now = time.time()
        if value is not None and now - (used or 0) > REFRESH and expires and expires > now:
            self._refresh(entries, key, value, expires, now)
        return value

    def _refresh(self, entries, key: str, value: bytes, expires: float, now: float) -> None:
        """Write the entry again, which moves it up the eviction order: once per REFRESH per
        process however many threads read it, and best effort (a refresh lost to a busy
        database only makes the entry look older)."""
        with self._lock:
            if self._refreshed.get(key, 0.0) > now - REFRESH:
                return
            if len(self._refreshed) > 10_000:
                self._refreshed.clear()
            self._refreshed[key] = now
        try:
            self._writes.call(self._rewrite, entries, key, value, expires, now)
        except diskcache.Timeout:
            pass

    @staticmethod
    def _rewrite(entries, key: str, value: bytes, expires: float, now: float) -> None:
        with entries.transact():                # not if deleted or flushed since the read
            if key in entries:
                entries.set(key, value, expire=expires - now, tag=now)

    def put(self, key: str, value: bytes, ttl: float) -> None:
        """Each write evicts the least recently used entry when over the bound (diskcache's
        default, ten at a time, would throw the new entry out too when entries are few and
        large). When that is not room enough (the new entry is larger), `cull` evicts in
        tens, oldest first, down to the bound: only with more than ten entries, so the new
        one stays."""
        self._writes.call(self._put, key, value, ttl)

    def _put(self, key: str, value: bytes, ttl: float) -> None:
        entries, _ = self._open()
        entries.set(key, value, expire=ttl, tag=time.time())
        if entries.volume() > self.max_bytes and len(entries) > CULL_BATCH:
            entries.cull()

    def delete(self, key: str) -> bool:
        entries, _ = self._open()
        return entries.delete(key)

    def flush(self) -> None:
        entries, meta = self._open()
        entries.clear()
        with meta.transact():
            meta.evict("log")
            meta.set("log:start", meta.get("log:seq", 0))
            meta.incr("generation")

    def add_counts(self, counts: dict[str, int]) -> None:
        self._writes.call(self._add_counts, counts)

    def _add_counts(self, counts: dict[str, int]) -> None:
        _, meta = self._open()
        with meta.transact():
            for name, count in counts.items():
                meta.incr(name, count)

    def stats(self) -> dict[str, int]:
        entries, meta = self._open()
        entries.expire()
        found = {"entries": len(entries), "bytes": entries.volume()}
        found.update({name: meta.get(name, 0) for name in COUNTERS})
        return found

    def append(self, record: Record) -> None:
        self._writes.call(self._append, record)

    def _append(self, record: Record) -> None:
        _, meta = self._open()
        with meta.transact():
            number = meta.incr("log:seq")
            meta.set(f"log:{number}", tuple(record), tag="log")
            meta.delete(f"log:{number - LOG_LIMIT}")

    def read(self, cursor: _Cursor | None, limit: int) -> LogPage:
        _, meta = self._open()
        generation, last = meta.get("generation", 0), meta.get("log:seq", 0)
        restarted = cursor is None or cursor.generation != generation
        position = meta.get("log:start", 0) if restarted else cursor.position
        position = max(position, last - LOG_LIMIT)
        records = []
        end = min(last, position + limit)
        for number in range(position + 1, end + 1):
            found = meta.get(f"log:{number}")
            if found is not None:
                records.append(Record(*found))
        return LogPage(records, _Cursor(generation, end), restarted)
