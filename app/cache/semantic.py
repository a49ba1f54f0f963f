"""This process's view of the shared semantic index.

Every process keeps its own SemanticIndex and brings it up to date from the backend's log
before each search: a store in any worker or instance appends (partition, key, text) to
the log, and every process finds it at its next semantic lookup, so the delay is one
lookup, not a timer. A process that starts with a long log to read catches up in slices
of at most CATCH_UP seconds per lookup. Candidates above the threshold then go through
the near-miss guard; the caller checks that the entry still exists (it may have expired
or been evicted since it was logged) and `forget`s it when it does not.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from app.cache.backends import Backend
from app.cache.guard import refusal
from app.cache.index import Match, SemanticIndex

PAGE = 1000           # log records read per backend call
CATCH_UP = 0.2        # seconds a lookup may spend reading a backlog


class SemanticMatcher:
    def __init__(self, threshold: float, capacity: int = 100_000):
        self.threshold = threshold
        self.index = SemanticIndex(capacity)
        self._cursor: object = None
        self._lock = threading.Lock()

    def sync(self, backend: Backend) -> None:
        """Read what other processes (and this one) logged since the last call."""
        deadline = time.monotonic() + CATCH_UP
        with self._lock:
            while True:
                page = backend.read(self._cursor, PAGE)
                if page.restarted:
                    self.index.clear()
                self.index.add([tuple(record) for record in page.records])
                self._cursor = page.cursor
                if len(page.records) < PAGE or time.monotonic() > deadline:
                    return

    def candidates(self, backend: Backend, partition: str, text: str) -> Iterator[Match]:
        """After catching up with the log: `match`."""
        self.sync(backend)
        return self.match(partition, text)

    def match(self, partition: str, text: str) -> Iterator[Match]:
        """Indexed prompts of the partition at or above the threshold that the near-miss
        guard lets through, best first; guarded one at a time, as the caller asks."""
        with self._lock:
            matches = self.index.search(partition, text, self.threshold)
        return (match for match in matches if refusal(match.text, text) is None)

    def forget(self, key: str) -> None:
        with self._lock:
            self.index.remove(key)

    def reset(self) -> None:
        """Start again from the log (after this process flushed the backend)."""
        with self._lock:
            self.index.clear()
            self._cursor = None

    def __len__(self) -> int:
        return len(self.index)
