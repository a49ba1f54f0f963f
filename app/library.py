"""The library API: `completion()` and its asyncio twin `acompletion()`, without the server.

Input is validated by the same schema as the HTTP endpoint, then runs through the same
service, so a library caller gets the same answers and the same errors (as ProxyError).
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterator

from app.api.schemas import validate_chat_request
from app.service import default_service

_END = object()


def completion(model: str, messages: list[dict[str, Any]], **params: Any):
    """An OpenAI-shaped chat.completion dict; with stream=True, an iterator of
    chat.completion.chunk dicts."""
    body = validate_chat_request({"model": model, "messages": messages, **params})
    outcome = default_service().complete(body)
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
