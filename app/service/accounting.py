"""Usage and cost of an answer: the provider's own usage when it reported one, else
counted with tiktoken (marked estimated); cost from the registry or deployment prices."""
from __future__ import annotations

from typing import Any

from app.providers.base import Target
from app.usage.pricing import TokenCounts, cost_of, format_cost, has_price
from app.usage.tokens import estimate_usage


class Bill:
    """Usage and cost of one answered attempt."""

    __slots__ = ("usage", "estimated", "cost", "cost_unknown", "counts")

    def __init__(self, usage: dict, estimated: bool, target: Target | None):
        self.usage = usage
        self.estimated = estimated
        self.counts = TokenCounts.from_usage(usage)
        self.cost = cost_of(target.info, target.settings, self.counts) if target else 0.0
        # No price for the model: cost is recorded as 0 but flagged, never passed off as free.
        self.cost_unknown = target is not None and not has_price(target.info, target.settings)

    @property
    def cost_text(self) -> str:
        """The cost as the x-switchboard-cost header carries it: USD, or "unknown"."""
        return "unknown" if self.cost_unknown else format_cost(self.cost)

    @classmethod
    def free(cls, usage: dict) -> "Bill":
        """An answer nobody paid for (a cache hit): the original usage, cost 0."""
        return cls(usage, False, None)


def settle(target: Target, params: dict[str, Any], response: dict) -> Bill:
    """Complete the response's usage where the provider left counts out, and price it."""
    usage, estimated = estimate_usage(target.upstream_model, params, response)
    response["usage"] = usage
    return Bill(usage, estimated, target)
