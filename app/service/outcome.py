"""What one completion produced: the body (or chunk iterator) and the facts for headers,
the ledger and the integrations."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from app.providers.base import Target


@dataclass
class Trail:
    """How the answer was reached: every failed attempt, retries and fallbacks taken."""

    attempts: list = field(default_factory=list)   # reliability.Attempt
    retries: int = 0
    fallbacks: int = 0


@dataclass
class Outcome:
    response: dict[str, Any] | None
    target: Target
    upstream_seconds: float = 0.0
    dropped_params: list[str] = field(default_factory=list)
    trail: Trail = field(default_factory=Trail)
    bill: Any = None                        # accounting.Bill, once known
    chunks: Iterator[dict] | None = None    # set instead of `response` when streaming
    stream: Any = None                      # streaming.ChunkStream behind `chunks`
    cache: str = "off"                      # off, miss, hit, semantic-hit
    cache_key: str | None = None
    cache_similarity: float | None = None
    saved_cost: float = 0.0                 # what a cache hit saved
    cached_inputs: int = 0                  # embeddings: inputs answered from the cache
    replayed: dict | None = None            # the cached completion behind a replayed stream
    upstream: Any = None                    # transport.StreamResponse a stream reads from
    native: dict | None = None              # pass-through: the provider's own answer
    passthrough: bool = False               # the answer (or stream events) is in the face's format
