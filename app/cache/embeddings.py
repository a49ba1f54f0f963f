"""Embeddings cached per input: a batch whose inputs were partly seen before sends only the
new ones upstream. Embeddings are deterministic, so an input's vector is the same whatever
batch it came in. Entries live in the response cache's backend, under the same switches
(`no-cache`, `no-store`, ttl, namespace, tenant) and fault handling.

An entry is its facts as JSON, a newline, then the vector as float64 bytes: reading back
16 vectors of 1,536 numbers as JSON text would cost more than asking the provider again.
"""
from __future__ import annotations

from array import array
from typing import Any

import orjson

from app.cache.cache import Cache
from app.cache.canonical import input_key
from app.cache.types import CacheRequest


class VectorCache:
    def __init__(self, cache: Cache):
        self.cache = cache

    def lookup(self, request: CacheRequest, inputs: list) -> list[dict | None]:
        """Each input's stored {embedding, tokens, cost, model, provider}, or None; all None
        when reading is off or failing."""
        missing: list[dict | None] = [None] * len(inputs)
        if request.options.get("no-cache") or not self.cache.faults.available():
            return missing
        try:
            found = [self._get(request, item) for item in inputs]
        except Exception as error:
            self.cache.faults.record("lookup", error)
            return missing
        self.cache.count("hits" if all(found) else "misses")
        return found

    def store(self, request: CacheRequest, inputs: list, answer: dict[str, Any],
              tokens: list[int], cost_per_token: float, model: str, provider: str) -> None:
        """Keep each new input's vector with its token count and what it cost."""
        if request.options.get("no-store") or not self.cache.faults.available():
            return
        ttl = request.options.get("ttl") or self.cache.config.ttl
        try:
            for item, entry, count in zip(inputs, answer["data"], tokens):
                facts = orjson.dumps({"tokens": count, "cost": count * cost_per_token,
                                      "model": model, "provider": provider})
                vector = array("d", entry["embedding"]).tobytes()
                self.cache.backend.put(input_key(request, item), facts + b"\n" + vector, ttl)
        except Exception as error:
            self.cache.faults.record("store", error)

    def _get(self, request: CacheRequest, item: Any) -> dict | None:
        raw = self.cache.backend.get(input_key(request, item))
        if raw is None:
            return None
        facts, _, vector = raw.partition(b"\n")   # JSON text never holds a raw newline
        return {**orjson.loads(facts), "embedding": array("d", vector).tolist()}
