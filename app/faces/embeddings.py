"""The embeddings face: OpenAI's /embeddings request and answer, to and from the service's.

The service always works with float vectors (they are what the cache keeps); the face turns
them into base64 when the client asked for `encoding_format: base64`.
"""
from __future__ import annotations

from typing import Any

from app.providers.embedding_format import as_base64


def to_service(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the service's request: `input` always a list of texts or token-id lists, the
    encoding the client wants back)."""
    request = dict(body)
    encoding = request.pop("encoding_format", None) or "float"
    given = request["input"]
    if isinstance(given, str):
        request["input"] = [given]
    elif all(isinstance(item, int) for item in given):
        request["input"] = [given]      # one input given as token ids
    return request, encoding


def to_client(answer: dict[str, Any], encoding: str) -> dict[str, Any]:
    if encoding != "base64":
        return answer
    data = [{**item, "embedding": as_base64(item["embedding"])} for item in answer["data"]]
    return {**answer, "data": data}
