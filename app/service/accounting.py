"""Usage and cost of an answer: the provider's own usage when it reported one, else
counted with tiktoken (marked estimated); cost from the registry or deployment prices."""
from __future__ import annotations

from typing import Any

from app.providers.base import Target
from app.usage.pricing import TokenCounts, cost_of
from app.usage.tokens import estimate_usage


class Bill:
    """Usage and cost of one answered attempt."""

    __slots__ = ("usage", "estimated", "cost", "counts")

    def __init__(self, usage: dict, estimated: bool, target: Target | None):
        self.usage = usage
        self.estimated = estimated
        self.counts = TokenCounts.from_usage(usage)
        self.cost = cost_of(target.info, target.settings, self.counts) if target else 0.0

    @classmethod
    def free(cls, usage: dict) -> "Bill":
        """An answer nobody paid for (a cache hit): the original usage, cost 0."""
        return cls(usage, False, None)


def settle(target: Target, params: dict[str, Any], response: dict) -> Bill:
    """Complete the response's usage where the provider left counts out, and price it."""
    usage, estimated = estimate_usage(target.upstream_model, params, response)
    response["usage"] = usage
    return Bill(usage, estimated, target)
