"""Cost of a completion from the registry's prices per token, overridable per deployment."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class TokenCounts:
    prompt: int = 0            # every input token, cached ones included (OpenAI's convention)
    completion: int = 0
    cached: int = 0            # input tokens read from the provider's prompt cache
    cache_creation: int = 0    # input tokens written to it (Anthropic bills these higher)
    reasoning: int = 0

    @classmethod
    def from_usage(cls, usage: Mapping[str, Any] | None) -> "TokenCounts":
        usage = usage or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                   int(prompt_details.get("cached_tokens") or 0),
                   int(usage.get("cache_creation_input_tokens") or 0),
                   int(completion_details.get("reasoning_tokens") or 0))


def price(target_info: Mapping[str, Any], settings: Mapping[str, Any], name: str) -> float | None:
    """A deployment's own price wins over the registry's."""
    value = settings.get(name)
    if value is None:
        value = target_info.get(name)
    return None if value is None else float(value)


def has_price(target_info: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """Whether the deployment or the registry prices this model at all; without a price its
    cost is unknown, which is not the same as free (say 0 in config for a free model)."""
    return any(price(target_info, settings, name) is not None
               for name in ("input_cost_per_token", "output_cost_per_token"))


def cost_of(target_info: Mapping[str, Any], settings: Mapping[str, Any],
            counts: TokenCounts) -> float:
    """USD for one completion. Cached input is priced at the cache-read price where the
    registry has one, cache writes at the cache-creation price; the rest at the input price."""
    input_price = price(target_info, settings, "input_cost_per_token") or 0.0
    output_price = price(target_info, settings, "output_cost_per_token") or 0.0
    cached_price = price(target_info, settings, "cache_read_input_token_cost")
    creation_price = price(target_info, settings, "cache_creation_input_token_cost")
    cached = counts.cached if cached_price is not None else 0
    creation = counts.cache_creation if creation_price is not None else 0
    plain_input = max(counts.prompt - cached - creation, 0)
    return (plain_input * input_price + cached * (cached_price or 0.0)
            + creation * (creation_price or 0.0) + counts.completion * output_price)


def format_cost(cost: float) -> str:
    """A plain decimal string (no exponent) to 1e-12 USD, as the x-switchboard-cost header
    carries it."""
    text = f"{cost:.12f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
