"""Token counts and cost ahead of a call, or of an answer a client holds, for clients that
budget ahead: the same counting and prices the proxy bills with."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.providers.base import Target
from app.usage.pricing import TokenCounts, cost_of, has_price
from app.usage.tokens import count_inputs, count_messages, estimate_usage

# Providers whose own tokenizer tiktoken is; elsewhere a count is an estimate.
EXACT_PROVIDERS = ("openai",)
# The most a reply may hold when neither the request nor the registry bounds it.
UNKNOWN_OUTPUT_LIMIT = 32_768


def prompt_tokens(target: Target, body: dict[str, Any]) -> tuple[int, bool]:
    """Prompt tokens of `body` (messages, tools, functions) for this target, and whether the
    count is an estimate (another tokenizer, or tool definitions, whose billing is opaque)."""
    if "messages" not in body:  # embeddings (`input`) and text completions (`prompt`)
        return count_inputs(target.upstream_model, body.get("input", body.get("prompt"))), \
            target.provider not in EXACT_PROVIDERS
    tokens = count_messages(target.upstream_model, body["messages"], body.get("tools"),
                            body.get("functions"))
    estimated = target.provider not in EXACT_PROVIDERS or bool(body.get("tools")
                                                               or body.get("functions"))
    return tokens, estimated


def _priced(target: Target, counts: TokenCounts, estimated: bool) -> dict[str, Any]:
    def usd(of: TokenCounts) -> float:  # to the 1e-12 the cost header carries
        return round(cost_of(target.info, target.settings, of), 12)

    return {
        "model": target.model_group, "provider": target.provider,
        "prompt_tokens": counts.prompt, "completion_tokens": counts.completion,
        "cached_tokens": counts.cached, "reasoning_tokens": counts.reasoning,
        "prompt_cost": usd(replace(counts, completion=0, reasoning=0)),
        "completion_cost": usd(TokenCounts(completion=counts.completion)),
        "cost": usd(counts), "estimated": estimated,
        "cost_unknown": not has_price(target.info, target.settings),  # then cost 0 is not free
    }


def quote_prompt(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The prompt's cost, plus the most the completion can cost when a token limit is given."""
    tokens, estimated = prompt_tokens(target, body)
    ceiling = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return _priced(target, TokenCounts(prompt=tokens, completion=ceiling), estimated)


def output_limit(target: Target) -> int:
    """The most output tokens one choice of this model can hold: its registry output
    limit, else its context window, else UNKNOWN_OUTPUT_LIMIT."""
    info = target.info or {}
    return int(info.get("max_output_tokens") or info.get("context_window")
               or UNKNOWN_OUTPUT_LIMIT)


def worst_case(target: Target, body: dict[str, Any]) -> tuple[int, float]:
    """(prompt tokens, the most this request can cost): the prompt, plus `n` choices
    (`best_of` candidates, all billed, for text completions) each as long as `max_tokens`
    allows (the model's output limit when absent or larger). What a budget reserves before
    the call, so concurrent requests cannot outspend it; priced once, on every keyed
    request's path."""
    tokens = prompt_tokens(target, body)[0]
    ceiling = output_limit(target)
    asked = body.get("max_completion_tokens") or body.get("max_tokens")
    per_choice = min(asked, ceiling) if asked else ceiling
    output = max(body.get("n") or 1, body.get("best_of") or 1) * per_choice
    counts = TokenCounts(prompt=tokens, completion=output)
    return tokens, round(cost_of(target.info, target.settings, counts), 12)


def quote_completion(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """What a chat.completion costs: its own usage, with any missing count counted from the
    messages and the answer's text, as the proxy does for a provider that reports none."""
    params = {"messages": body.get("messages") or (), "tools": body.get("tools"),
              "functions": body.get("functions")}
    usage, estimated = estimate_usage(target.upstream_model, params, body["completion"])
    return _priced(target, TokenCounts.from_usage(usage), estimated)
