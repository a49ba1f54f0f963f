"""The service's embedding format (OpenAI's list with float vectors), shared by the provider
modules that translate other embedding APIs into it."""
from __future__ import annotations

import base64
import struct
from typing import Any, Iterable

from app.errors import InvalidRequestError
from app.usage.tokens import encoding


def embedding_list(model: str, vectors: Iterable[list[float]],
                   prompt_tokens: int | None) -> dict[str, Any]:
    """OpenAI's embeddings answer; a count the provider did not report is None (the service
    counts it)."""
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": vector}
                     for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}


def as_floats(vector: Any) -> list[float]:
    """A vector as a float list: OpenAI-compatible servers may answer base64 (little-endian
    float32) even when floats were asked for."""
    if isinstance(vector, str):
        raw = base64.b64decode(vector)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(vector, list):
        raise ValueError("an embedding is neither a list nor base64")
    return vector


def as_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: the vector's float32 bytes, little-endian."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def input_texts(inputs: list) -> list[str]:
    """Inputs as text for APIs that take no token ids: token-id lists are decoded with
    cl100k_base (the encoding OpenAI's embedding models use)."""
    return [item if isinstance(item, str) else decoded(item, f"input[{position}]")
            for position, item in enumerate(inputs)]


def decoded(tokens: list[int], param: str) -> str:
    """Token ids as text (cl100k_base); ids the encoding does not have are the client's 400."""
    try:
        return encoding("cl100k_base").decode(tokens)
    except (KeyError, ValueError, OverflowError):
        raise InvalidRequestError(f"Invalid '{param}': it holds token ids that cl100k_base "
                                  f"does not have.", param=param.split("[")[0],
                                  code="invalid_value") from None
