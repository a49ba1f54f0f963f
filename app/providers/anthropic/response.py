"""Anthropic Message -> OpenAI chat.completion, and the usage and stop-reason mappings the
stream translator shares.

Usage: OpenAI's prompt_tokens counts every input token, cached or not, so it is Anthropic's
input_tokens + cache_read_input_tokens + cache_creation_input_tokens; the cache reads are
also OpenAI's prompt_tokens_details.cached_tokens, and both cache counts stay as extra keys
because they are priced differently. The response id is Anthropic's message id, so a
request can be traced in Anthropic's console.
"""
from __future__ import annotations

from typing import Any, Mapping

from app.jsonfast import dumps
from app.providers.base import StopScanner, Target, chat_completion, usage_dict

FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None) -> str:
    """Reasons added after this table was written count as a normal stop."""
    return FINISH_REASONS.get(stop_reason, "stop")


def openai_usage(usage: Mapping[str, Any] | None) -> dict:
    usage = usage or {}
    read = usage.get("cache_read_input_tokens") or 0
    created = usage.get("cache_creation_input_tokens") or 0
    prompt = (usage.get("input_tokens") or 0) + read + created
    return usage_dict(prompt, usage.get("output_tokens") or 0,
                      prompt_tokens_details={"cached_tokens": read},
                      cache_read_input_tokens=read, cache_creation_input_tokens=created)


def tool_call(block: dict) -> dict:
    return {"id": block["id"], "type": "function",
            "function": {"name": block["name"],
                         "arguments": dumps(block.get("input") or {}).decode()}}


THINKING = ("thinking", "redacted_thinking")


def completion(payload: Any, target: Target, stops: list[str]) -> dict:
    """Text blocks joined into `content`, tool_use blocks -> `tool_calls` (ids kept), thinking
    -> `reasoning_content` with the signed blocks in `thinking_blocks` (a later turn sends them
    back); server-tool blocks have no OpenAI counterpart and are left out. A local stop
    sequence in the text ends the answer there, tool calls after it included."""
    if not isinstance(payload, dict) or not isinstance(payload.get("content"), list):
        raise ValueError("the answer has no content list")
    text = "".join(block["text"] for block in payload["content"] if block.get("type") == "text")
    calls = [tool_call(block) for block in payload["content"] if block.get("type") == "tool_use"]
    reason = finish_reason(payload.get("stop_reason"))
    scanner = StopScanner(stops)
    cut = scanner.cut(text)
    if scanner.hit:
        text, calls, reason = cut, [], "stop"
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    thoughts = [block for block in payload["content"] if block.get("type") in THINKING]
    if thoughts:
        message["reasoning_content"] = "".join(b.get("thinking") or "" for b in thoughts)
        message["thinking_blocks"] = thoughts
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
    return chat_completion(payload.get("model") or target.upstream_model, [choice],
                           openai_usage(payload.get("usage")), payload.get("id"))
