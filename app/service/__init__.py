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


def completion(model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    """An OpenAI-shaped chat.completion, through the same code path as the HTTP endpoint."""
    return default_service().complete({"model": model, "messages": messages, **params}).response
