"""What the service and a response cache exchange. The cache stores OpenAI-format results
(and, beside a passed-through one, the provider's own answer)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CacheRequest:
    """One request as the cache sees it."""

    model_group: str                 # the model name the client asked for
    params: dict[str, Any]           # OpenAI params (messages, temperature, ...), no `model`
    options: dict[str, Any] = field(default_factory=dict)   # the body's "cache" object
    tenant: str | None = None        # the virtual key's id, when keys are in use


@dataclass
class CachedAnswer:
    response: dict[str, Any]         # the stored chat.completion
    status: str                      # "hit" or "semantic-hit"
    key: str                         # the entry's key (x-switchboard-cache-key)
    model: str                       # the deployment model that produced it
    provider: str
    cost: float                      # what producing it cost: saved by this hit
    similarity: float | None = None  # semantic hits only
    native: dict[str, Any] | None = None  # a pass-through's own answer, kept with it


class ResponseCache(Protocol):
    def lookup(self, request: CacheRequest) -> CachedAnswer | None:
        """A stored answer for this request, or None (also when reading is turned off)."""

    def store(self, request: CacheRequest, response: dict[str, Any], model: str, provider: str,
              cost: float, native: dict[str, Any] | None = None) -> None:
        """Keep a finished answer (unless the request said no-store); `native`: what a
        pass-through provider answered in the client's own format (JSON), served on a hit
        of the same face instead of a translation of `response`."""
