"""Tool-call ids in the form a strict server takes (Mistral: 9 letters and digits).

A conversation whose history came from another provider carries ids such as `call_...` or
`toolu_...`, which such a server refuses. Each one becomes a 9-character id derived from it
(a hash), so the same id becomes the same short id in the assistant's `tool_calls` and in
the tool message that answers it, in this request and in every later turn (the cache key
stays stable too). An id already in the form is kept as it is.
"""
from __future__ import annotations

import hashlib
import re
import string
from typing import Any

LENGTH = 9
FORM = re.compile(rf"[A-Za-z0-9]{{{LENGTH}}}")
ALPHABET = string.ascii_letters + string.digits


def short_id(call_id: str) -> str:
    """`call_id` itself when the server takes it, else 9 letters and digits derived from it."""
    if FORM.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    characters = []
    for _ in range(LENGTH):
        number, digit = divmod(number, len(ALPHABET))
        characters.append(ALPHABET[digit])
    return "".join(characters)


def with_short_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with every tool-call id (assistant `tool_calls[].id`, tool
    `tool_call_id`) in the short form; the caller's messages are left unchanged."""
    converted = []
    for message in messages:
        if message.get("role") == "assistant" and message.get("tool_calls"):
            message = {**message, "tool_calls": [
                {**call, "id": short_id(call["id"])} if isinstance(call.get("id"), str) else call
                for call in message["tool_calls"]]}
        elif message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str):
            message = {**message, "tool_call_id": short_id(message["tool_call_id"])}
        converted.append(message)
    return converted
