"""Shared pieces of the Replicate provider tests: model names and the last create call."""
from __future__ import annotations

from tests.emulators.replicate import (LLAMA2_VERSION, PLAIN_VERSION)


README_MODELS = [f"replicate/meta/llama-2-70b-chat:{LLAMA2_VERSION}",
                 f"replicate/llama-2-70b-chat:{LLAMA2_VERSION}"]
LLAMA3 = "replicate/meta/meta-llama-3-70b-instruct"
MIXTRAL = "replicate/mistralai/mixtral-8x7b-instruct-v0.1"
LLAMA2 = README_MODELS[0]
PLAIN = f"replicate/acme/plain-llm:{PLAIN_VERSION}"
USER = [{"role": "user", "content": "ping"}]


def created(emulator) -> dict:
    """The body of the last prediction create call."""
    return next(c for c in reversed(emulator.calls) if c.method == "POST").body
