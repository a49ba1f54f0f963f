"""What one completion produced: the body (or chunk iterator) and the facts for headers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from app.providers.base import Target


@dataclass
class Outcome:
    """What one completion produced, plus the facts the endpoint reports in headers."""

    response: dict[str, Any] | None
    target: Target
    upstream_seconds: float = 0.0
    dropped_params: list[str] = field(default_factory=list)
    attempted_fallbacks: int = 0
    attempted_retries: int = 0
    chunks: Iterator[dict] | None = None   # set instead of `response` when streaming
