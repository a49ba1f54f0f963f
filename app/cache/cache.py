"""The response cache the service calls: exact lookups, semantic lookups, storing, and the
admin operations (stats, flush, delete).

A lookup tries the exact key first; in semantic mode, and unless the request said
`"semantic": false`, it then asks the semantic matcher for the closest guarded entry of the
request's partition. Any backend failure becomes a miss or a skipped store (see faults).
"""
from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from typing import Any

import orjson

from app.cache.backends import Backend, Record
from app.cache.canonical import exact_key, semantic_parts
from app.cache.config import CacheConfig
from app.cache.faults import Faults
from app.cache.semantic import SemanticMatcher
from app.cache.types import CacheRequest, CachedAnswer

KEY = re.compile(r"^[0-9a-f]{32}$")
COUNT_EVERY = 1.0       # seconds between this process's additions to the shared counters
# How a stored answer may have ended. Anything else (no finish reason: a cut stream;
# content_filter: a filtered answer) is never stored.
FINISHED = ("stop", "length", "tool_calls", "function_call")


def storable(response: Any) -> bool:
    """A whole answer: a chat.completion whose every choice finished normally."""
    if not isinstance(response, dict) or response.get("object") != "chat.completion":
        return False
    choices = response.get("choices")
    return bool(choices) and all(isinstance(choice, dict) and choice.get("finish_reason")
                                 in FINISHED for choice in choices)


class Cache:
    def __init__(self, config: CacheConfig, backend: Backend,
                 matcher: SemanticMatcher | None = None, faults: Faults | None = None):
        self.config = config
        self.backend = backend
        self.matcher = matcher
        self.faults = faults or Faults()
        self.lookups = 0
        self._counts: Counter[str] = Counter()
        self._counted_at = time.monotonic()
        self._counts_lock = threading.Lock()

    # -- the service's interface (types.ResponseCache) ---------------------------------------
    def lookup(self, request: CacheRequest) -> CachedAnswer | None:
        if request.options.get("no-cache") or not self.faults.available():
            return None
        with self._counts_lock:
            self.lookups += 1
        try:
            key = exact_key(request)
        except (TypeError, ValueError):     # a library caller's value JSON cannot hold
            return None
        try:
            answer = self._fetch(key, request, "hit", None)
            if answer is None and self._semantic(request):
                answer = self._semantic_lookup(request)
        except Exception as error:
            self.faults.record("lookup", error)
            return None
        self.count({"hit": "hits", "semantic-hit": "semantic_hits"}.get(
            answer.status if answer else "", "misses"))
        return answer

    def store(self, request: CacheRequest, response: dict[str, Any], model: str, provider: str,
              cost: float, native: dict[str, Any] | None = None) -> None:
        if request.options.get("no-store") or not storable(response):
            return
        if not self.faults.available():
            return
        try:
            key = exact_key(request)
            entry = orjson.dumps({"response": response, "model": model, "provider": provider,
                                  "cost": cost, "stored_at": time.time(), "native": native})
        except (TypeError, ValueError):
            return
        try:
            self.backend.put(key, entry, request.options.get("ttl") or self.config.ttl)
            parts = semantic_parts(request) if self.matcher is not None else None
            if parts is not None:           # offered to semantic lookups, whatever this one asked
                self.backend.append(Record(parts.partition, key, parts.text))
        except Exception as error:
            self.faults.record("store", error)

    # -- admin -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Entries, bytes and counters of the shared store; `faults` and `process` (lookups
        made, prompts in the semantic index) are this worker process's own."""
        found: dict[str, Any] = {"enabled": True, "mode": self.config.mode,
                                 "backend": self.backend.name, "available": True}
        try:
            self._flush_counts()
            counts = self.backend.stats()
        except Exception as error:
            self.faults.record("stats", error)
            counts = dict.fromkeys(("entries", "bytes", "hits", "semantic_hits", "misses"))
            found["available"] = False
        found.update(counts)
        if found["available"]:
            answered = counts["hits"] + counts["semantic_hits"]
            total = answered + counts["misses"]
            found["hit_rate"] = round(answered / total, 4) if total else 0.0
        else:
            found["hit_rate"] = None
        found["faults"] = self.faults.count
        found["process"] = {"pid": os.getpid(), "lookups": self.lookups,
                            "indexed": len(self.matcher) if self.matcher is not None else None}
        return found

    def flush(self) -> None:
        self.backend.flush()
        if self.matcher is not None:
            self.matcher.reset()

    def delete(self, key: str) -> bool:
        """Remove one entry by the key `x-switchboard-cache-key` showed; False if unknown."""
        if not KEY.match(key):
            return False
        removed = self.backend.delete(key)
        if self.matcher is not None:
            self.matcher.forget(key)
        return removed

    # -- inside ------------------------------------------------------------------------------
    def count(self, name: str) -> None:
        """Hits and misses reach the shared counters once a second per process (and before
        this process answers /cache/stats), not with a write per request."""
        with self._counts_lock:
            self._counts[name] += 1
            due = time.monotonic() - self._counted_at >= COUNT_EVERY
        if due:
            try:
                self._flush_counts()
            except Exception as error:
                self.faults.record("count", error, pause=False)

    def _flush_counts(self) -> None:
        with self._counts_lock:
            counts, self._counts, self._counted_at = self._counts, Counter(), time.monotonic()
        if not counts:
            return
        try:
            self.backend.add_counts(dict(counts))
        except Exception:
            with self._counts_lock:
                self._counts.update(counts)     # kept for the next try
            raise

    def _semantic(self, request: CacheRequest) -> bool:
        return self.matcher is not None and request.options.get("semantic", True)

    def _semantic_lookup(self, request: CacheRequest) -> CachedAnswer | None:
        parts = semantic_parts(request)
        if parts is None:
            return None
        for match in self.matcher.candidates(self.backend, parts.partition, parts.text):
            answer = self._fetch(match.key, request, "semantic-hit", match.similarity)
            if answer is not None:
                return answer
        return None

    def _fetch(self, key: str, request: CacheRequest, status: str,
               similarity: float | None) -> CachedAnswer | None:
        raw = self.backend.get(key)
        if raw is None:
            if similarity is not None:          # logged once, since expired or evicted
                self.matcher.forget(key)
            return None
        entry = orjson.loads(raw)
        max_age = request.options.get("s-maxage")
        if max_age is not None and time.time() - entry["stored_at"] > max_age:
            return None
        return CachedAnswer(entry["response"], status, key, entry["model"], entry["provider"],
                            entry["cost"], similarity, entry.get("native"))
