"""Shared pieces of the Hugging Face provider tests."""
from __future__ import annotations

from tests.huggingface_fixtures import tgi_config  # noqa: F401  (a fixture)
from tests.provider_fixtures import sent


USER = [{"role": "user", "content": "ping"}]
CODE = [{"role": "user", "content": "def fib(n):"}]


def params_sent(emulator) -> dict:
    return sent(emulator)["parameters"]
