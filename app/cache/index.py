"""An in-memory TF-IDF index per partition, updated one prompt at a time.

Each partition keeps its newest rows (up to TAIL_ROWS) as raw counts, scored exactly under
the current IDF on every search, and the older rows merged into one CSR block whose
TF-IDF weights are computed at merge time; a block of INVERT_ROWS rows or more also gets an
inverted index (feature -> rows), so a search reads only the rows that share a feature
with the query instead of scanning the block. Block scores use the IDF of the last merge:
they only pick the CANDIDATES best rows, which are then scored again exactly, so the
similarity a caller sees is always the cosine under the current IDF.

Inserting costs one hashing pass and a document-frequency update; merging (every
TAIL_ROWS inserts into a partition) costs a pass over that partition's block. Removed rows
are masked until the next merge drops them. Not thread-safe: the caller holds a lock.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from app.cache.vectors import N_FEATURES, Vectorizer

TAIL_ROWS = 1024
INVERT_ROWS = 4096
CANDIDATES = 16
SLACK = 0.1          # how far a block score (stale IDF) may sit below the exact cosine


class Match(NamedTuple):
    key: str
    similarity: float
    text: str


class _Partition:
    __slots__ = ("keys", "texts", "rows", "dead", "block", "weights", "inverted", "pending",
                 "_tail")

    def __init__(self):
        self.keys: list[str] = []
        self.texts: list[str] = []
        self.rows: dict[str, int] = {}          # key -> row number
        self.dead: set[int] = set()
        self.block = None                       # CSR counts of rows [0, merged)
        self.weights = None                     # their TF-IDF rows as of the merge
        self.inverted = None                    # weights.T as CSR, for big blocks
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []   # (columns, counts) per row
        self._tail = None                       # `pending` as one CSR, built when searched

    @property
    def merged(self) -> int:
        return 0 if self.block is None else self.block.shape[0]

    def append(self, key: str, text: str, columns: np.ndarray, counts: np.ndarray) -> None:
        self.rows[key] = len(self.keys)
        self.keys.append(key)
        self.texts.append(text)
        self.pending.append((columns, counts))
        self._tail = None

    def tail(self):
        """The rows after the block as one CSR matrix (None when there are none)."""
        if self._tail is None and self.pending:
            from scipy.sparse import csr_matrix
            sizes = [len(columns) for columns, _ in self.pending]
            self._tail = csr_matrix(
                (np.concatenate([counts for _, counts in self.pending]),
                 np.concatenate([columns for columns, _ in self.pending]),
                 np.concatenate(([0], np.cumsum(sizes)))), shape=(len(sizes), N_FEATURES))
        return self._tail

    def columns(self, row: int) -> np.ndarray:
        if row < self.merged:
            return self.block.indices[self.block.indptr[row]:self.block.indptr[row + 1]]
        return self.pending[row - self.merged][0]


class SemanticIndex:
    """Prompts by partition; `search` gives the rows most similar to a text, best first."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self.vectorizer = Vectorizer()
        self._dense = np.zeros(N_FEATURES, dtype=np.float32)
        self._partitions: dict[str, _Partition] = {}
        self._order: OrderedDict[str, str] = OrderedDict()     # key -> partition, oldest first

    def __len__(self) -> int:
        return len(self._order)

    def clear(self) -> None:
        self.vectorizer = Vectorizer()
        self._partitions.clear()
        self._order.clear()

    def add(self, records: list[tuple[str, str, str]]) -> None:
        """(partition, key, text) records, hashed in one pass; a known key is replaced."""
        records = list({key: (name, key, text) for name, key, text in records}.values())
        for _, key, _ in records:
            self.remove(key)
        if not records:
            return
        counts = self.vectorizer.counts([text for _, _, text in records])
        self.vectorizer.learn(counts.indices, counts.shape[0])
        bounds = counts.indptr
        for position, (name, key, text) in enumerate(records):
            part = self._partitions.setdefault(name, _Partition())
            start, end = bounds[position], bounds[position + 1]
            part.append(key, text, counts.indices[start:end], counts.data[start:end])
            self._order[key] = name
            if len(part.keys) - part.merged >= TAIL_ROWS:
                self._merge(part)
        while len(self._order) > self.capacity:
            self.remove(next(iter(self._order)))

    def remove(self, key: str) -> None:
        name = self._order.pop(key, None)
        if name is None:
            return
        part = self._partitions[name]
        row = part.rows.pop(key)
        part.dead.add(row)
        self.vectorizer.forget(part.columns(row))
        if not part.rows:
            del self._partitions[name]

    def search(self, name: str, text: str, threshold: float) -> list[Match]:
        """Rows of the partition whose cosine with `text` is at least `threshold`, best first."""
        part = self._partitions.get(name)
        if part is None:
            return []
        query = self.vectorizer.weigh(self.vectorizer.counts([text]))
        if query.nnz == 0:
            return []
        self._dense[query.indices] = query.data      # matrix @ dense vector: one pass, no copies
        try:
            return self._matches(part, query, threshold)
        finally:
            self._dense[query.indices] = 0.0

    def _matches(self, part: _Partition, query, threshold: float) -> list[Match]:
        merged, floor = part.merged, threshold - SLACK
        scores = np.full(len(part.keys), -1.0, dtype=np.float32)
        if merged:
            scores[:merged] = (part.inverted[query.indices].T @ query.data
                               if part.inverted is not None else part.weights @ self._dense)
        tail = part.tail()
        if tail is not None:
            scores[merged:] = self.vectorizer.weigh(tail) @ self._dense
        if part.dead:
            scores[list(part.dead)] = -1.0
        rows = np.flatnonzero(scores >= floor)
        if rows.size > CANDIDATES:
            rows = rows[np.argpartition(scores[rows], -CANDIDATES)[-CANDIDATES:]]
        old = rows[rows < merged]
        if old.size:    # block scores used the merge-time IDF: score these again exactly
            scores[old] = self.vectorizer.weigh(part.block[old]) @ self._dense
        matches = [Match(part.keys[row], float(min(scores[row], 1.0)), part.texts[row])
                   for row in rows if scores[row] >= threshold]
        matches.sort(key=lambda match: -match.similarity)
        return matches

    def _merge(self, part: _Partition) -> None:
        """Fold the tail into the block, drop removed rows, refresh weights under today's IDF."""
        from scipy.sparse import vstack
        pieces = [m for m in (part.block, part.tail()) if m is not None]
        counts = vstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
        if part.dead:
            keep = [row for row in range(len(part.keys)) if row not in part.dead]
            counts = counts[keep]
            part.keys = [part.keys[row] for row in keep]
            part.texts = [part.texts[row] for row in keep]
            part.rows = {key: row for row, key in enumerate(part.keys)}
            part.dead = set()
        part.block, part.pending, part._tail = counts, [], None
        part.weights = self.vectorizer.weigh(counts)
        part.inverted = part.weights.T.tocsr() if counts.shape[0] >= INVERT_ROWS else None
