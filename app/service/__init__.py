"""The service layer: one CompletionService per process for library use."""
from __future__ import annotations

import threading

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
