"""Cohere v2 answers (whole responses and stream pieces) -> OpenAI's shapes."""
from __future__ import annotations

from typing import Any

from app.errors import UpstreamError
from app.providers.base import usage_dict
from app.providers.upstream_errors import in_band_error

FINISH_REASONS = {
    "COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls", "ERROR_TOXIC": "content_filter",
    "ERROR_LIMIT": "length",  # v1: the context limit ended the generation
}
# Finish reasons that mean the generation failed, in words (the HTTP answer was a 200).
FAILURES = {"ERROR": "the model failed while generating",
            "TIMEOUT": "the generation timed out at Cohere",
            "USER_CANCEL": "the generation was cancelled"}


def failure(provider: str, reason: str, detail: str | None = None) -> UpstreamError:
    """A 502 (a gateway's answer for an upstream failure) that says what Cohere reported."""
    what = FAILURES.get(reason, "the generation failed")
    return in_band_error(provider, 502, f"{what} (finish_reason {reason})"
                         + (f": {detail}" if detail else ""))


def finish_reason(provider: str, reason: Any) -> str:
    """OpenAI's finish_reason; a failed generation raises instead of looking finished."""
    if reason in FAILURES:
        raise failure(provider, reason)
    return FINISH_REASONS.get(reason, "stop")  # a value newer than this table: still an answer


def usage(cohere_usage: Any) -> dict | None:
    """`tokens` (what the model processed) first, `billed_units` where tokens are missing."""
    if not isinstance(cohere_usage, dict):
        return None

    def count(field: str) -> int:
        for group in ("tokens", "billed_units"):
            value = (cohere_usage.get(group) or {}).get(field)
            if value is not None:
                return int(value)
        return 0

    cached = cohere_usage.get("cached_tokens")
    details = {"cached_tokens": int(cached)} if cached is not None else None
    return usage_dict(count("input_tokens"), count("output_tokens"),
                      prompt_tokens_details=details)


def logprob_entries(items: list[dict]) -> list[dict]:
    """Cohere logprobs per text chunk -> OpenAI entries (one per chunk, its tokens summed)."""
    entries = []
    for item in items:
        text = item.get("text") or ""
        entries.append({"token": text, "logprob": sum(item.get("logprobs") or ()),
                        "bytes": list(text.encode()), "top_logprobs": []})
    return entries


def tool_call(call: dict) -> dict:
    function = call["function"]
    return {"id": call["id"], "type": "function",
            "function": {"name": function["name"], "arguments": function.get("arguments") or "{}"}}


def choice(payload: dict, provider: str) -> dict:
    message = payload["message"]
    text = "".join(part["text"] for part in message.get("content") or ()
                   if part.get("type") == "text")
    thinking = "".join(part.get("thinking") or "" for part in message.get("content") or ()
                       if part.get("type") == "thinking")   # the reasoning, not the answer
    calls = [tool_call(c) for c in message.get("tool_calls") or ()]
    if calls and not text:
        text = message.get("tool_plan") or ""    # the model's plan: content beside the calls
    openai_message: dict[str, Any] = {"role": "assistant",
                                      "content": text if text or not calls else None}
    if thinking:
        openai_message["reasoning_content"] = thinking
    finish = finish_reason(provider, payload["finish_reason"])
    if calls:
        openai_message["tool_calls"] = calls
    logprobs = payload.get("logprobs")
    return {"index": 0, "message": openai_message,
            "logprobs": {"content": logprob_entries(logprobs)} if logprobs else None,
            "finish_reason": finish}
