"""The service layer, also the library API: `completion(model, messages, **params)`."""
from __future__ import annotations

import threading
from typing import Any

from app.service.completion import CompletionService

_default: CompletionService | None = None
_lock = threading.Lock()


def default_service() -> CompletionService:
    """One service per process, built from the environment on first use."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = CompletionService()
    return _default


def completion(model: str, messages: list[dict[str, Any]], **params: Any):
    """An OpenAI-shaped chat.completion dict, through the same code path as the HTTP endpoint;
    with stream=True, an iterator of chat.completion.chunk dicts."""
    outcome = default_service().complete({"model": model, "messages": messages, **params})
    return outcome.chunks if outcome.chunks is not None else outcome.response
