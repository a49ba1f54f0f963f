"""Shared pieces of the Cohere provider tests."""
from __future__ import annotations

from tests.emulators.cohere import TEMPLATE_TOKENS


USER = [{"role": "user", "content": "ping"}]
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {}}}}


def prompt_tokens(*texts: str) -> int:
    """What the emulator's model counts (words + one per turn), plus Cohere's template."""
    return sum(len(t.split()) for t in texts) + len(texts) + TEMPLATE_TOKENS
