"""The model registry: the one source of truth for model facts (provider, limits, prices).

Loaded once from models.json beside this file; see its `_about` for provenance.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

REGISTRY_FILE = Path(__file__).with_name("models.json")


class ModelRegistry:
    def __init__(self, models: dict[str, dict[str, Any]]):
        self._models = models
        self._by_upstream: dict[tuple[str, str], dict[str, Any]] = {}
        for name, info in models.items():
            self._by_upstream.setdefault((info["provider"], info.get("upstream_model", name)), info)

    def get(self, name: str) -> dict[str, Any] | None:
        return self._models.get(name)

    def items(self):
        return self._models.items()

    def __len__(self) -> int:
        return len(self._models)

    def find_upstream(self, provider: str, upstream_model: str) -> dict[str, Any] | None:
        """Facts for a provider's own model id (e.g. anthropic + claude-2), whatever name was sent."""
        return self._by_upstream.get((provider, upstream_model))


@lru_cache(maxsize=1)
def load_registry() -> ModelRegistry:
    return ModelRegistry(orjson.loads(REGISTRY_FILE.read_bytes())["models"])
