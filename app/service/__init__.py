"""The service layer, also the library API: `completion()` and its asyncio twin `acompletion()`."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Iterator

from app.service.completion import CompletionService

_default: CompletionService | None = None
_lock = threading.Lock()
_END = object()


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


async def acompletion(model: str, messages: list[dict[str, Any]], **params: Any):
    """`completion` for asyncio code: the blocking upstream I/O runs in worker threads, so the
    event loop is never blocked. With stream=True, an async iterator of chunk dicts."""
    result = await asyncio.to_thread(completion, model, messages, **params)
    return _async_chunks(result) if isinstance(result, Iterator) else result


async def _async_chunks(chunks: Iterator[dict]) -> AsyncIterator[dict]:
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, _END)
            if chunk is _END:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # frees the upstream connection when the consumer stops early
            await asyncio.to_thread(close)
