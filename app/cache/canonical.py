"""What makes two requests the same: the exact key and the semantic partition.

Both hash a canonical JSON form (sorted keys, no whitespace, 1.0 written as 1) of the
model group, every parameter that can change the answer (all but stream, stream_options
and user, which change only its delivery or attribution; provider-specific extras count),
the messages and the tenant scope (virtual key and namespace). The exact key covers the
whole conversation; the partition covers all of it but the text of the last user message,
which is what the semantic index compares.
"""
from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import orjson

from app.cache.types import CacheRequest

KEY_VERSION = 1           # bump when the canonical form changes: old entries stop matching
DELIVERY_ONLY = ("stream", "stream_options", "user")
MAX_SEMANTIC_CHARS = 2000  # longer prompts are matched exactly only


class Semantic(NamedTuple):
    partition: str
    text: str


def exact_key(request: CacheRequest) -> str:
    return _digest(request, request.params.get("messages"))


def input_key(request: CacheRequest, item: Any) -> str:
    """One embedding input's key: the model, its parameters (dimensions, input_type) and the
    tenant scope, with the input (a text or token ids) in place of the messages."""
    return _digest(request, item, part="embedding")


def semantic_parts(request: CacheRequest) -> Semantic | None:
    """The partition and the last user text, or None when the request ends otherwise
    (a tool result, an image, an empty or very long text)."""
    messages = request.params.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    text = _text(last.get("content")) if last.get("role") == "user" else None
    if not text or not text.strip() or len(text) > MAX_SEMANTIC_CHARS:
        return None
    rest = {name: value for name, value in last.items() if name != "content"}
    return Semantic(_digest(request, [*messages[:-1], rest], part="partition"), text)


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content):
        return "\n".join(p["text"] for p in content)
    return None


def _digest(request: CacheRequest, messages: Any, part: str = "exact") -> str:
    params = {name: value for name, value in request.params.items()
              if name not in DELIVERY_ONLY and name != "messages"}
    form = {"v": KEY_VERSION, "part": part, "model": request.model_group, "params": params,
            "messages": messages, "tenant": request.tenant,
            "namespace": request.options.get("namespace")}
    data = orjson.dumps(_plain(form), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(data).hexdigest()[:32]


def _plain(value: Any) -> Any:
    """Numbers that are whole become ints, so temperature 1 and 1.0 are one request."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
