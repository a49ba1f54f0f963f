"""Gemini `GenerateContentResponse` -> OpenAI choices, usage and stream fragments.

One candidate becomes one choice. Gemini's function calls usually carry no id, so each
gets a fresh `call_...` id (an id Gemini does send is kept); the follow-up tool message
is matched back to the function by name through the assistant message that holds the
call (see request.py). A part's
`thoughtSignature` rides along as `extra_content.google.thought_signature`, the field
Google's own OpenAI-compatible endpoint uses, so that it can be sent back: on the tool call
for a functionCall part, on the message (or stream delta) for a text part, where Gemini
signs an answer without function calls (in a stream often on a last, empty text part).
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from app.errors import UpstreamError
from app.providers.base import usage_dict
from app.providers.gemini.request import dig

FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE",
            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "ESCALATION")
# Gemini finishReason -> OpenAI finish_reason. Any other reason (MALFORMED_FUNCTION_CALL,
# UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, MISSING_THOUGHT_SIGNATURE, MALFORMED_RESPONSE,
# OTHER, and reasons newer than this table) means the generation failed.
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length",
                  **{reason: "content_filter" for reason in FILTERED}}


def finish_reason(reason: Any, called: bool) -> str:
    """OpenAI's finish_reason; a failed generation raises a 502 that is retried and falls
    back like any upstream failure, rather than passing for an empty answer."""
    mapped = FINISH_REASONS.get(reason, "stop") if reason is None else FINISH_REASONS.get(reason)
    if mapped is None:
        raise UpstreamError(f"gemini ended the generation with finishReason {reason}: the "
                            f"model failed to produce an answer", provider="gemini",
                            status=502, type="api_error", code="generation_failed")
    return "tool_calls" if mapped == "stop" and called else mapped


def candidate_index(candidate: dict, position: int) -> int:
    """Gemini leaves `index` out when it is 0 (proto3 JSON), so fall back to the position."""
    index = candidate.get("index")
    return index if isinstance(index, int) else position


def split_parts(candidate: dict) -> tuple[list[str], list[dict], str]:
    """(answer text pieces, functionCall parts, thought text): thought summaries are not
    answer text but the reasoning, `reasoning_content`."""
    parts = dig(candidate, "content", "parts") or []
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
    thoughts = "".join(p["text"] for p in parts if isinstance(p.get("text"), str) and p.get("thought"))
    return texts, [p for p in parts if isinstance(p.get("functionCall"), dict)], thoughts


def signed(signature: str) -> dict:
    """The `extra_content` that carries a Gemini thought signature in OpenAI's shape."""
    return {"google": {"thought_signature": signature}}


def text_signature(candidate: dict) -> str | None:
    """The signature on the candidate's answer text (the last signed text part), if any."""
    parts = dig(candidate, "content", "parts") or []
    signatures = [p["thoughtSignature"] for p in parts if isinstance(p.get("text"), str)
                  and not p.get("thought") and isinstance(p.get("thoughtSignature"), str)
                  and p["thoughtSignature"]]
    return signatures[-1] if signatures else None


def tool_call(part: dict) -> dict:
    call = part["functionCall"]
    if not isinstance(call.get("name"), str):
        raise ValueError("a functionCall has no name")
    tool = {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": call["name"],
                         "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False)}}
    if part.get("thoughtSignature"):
        tool["extra_content"] = signed(part["thoughtSignature"])
    return tool


def logprobs(result: Any) -> dict | None:
    """logprobsResult -> OpenAI's choice.logprobs; Gemini omits a log probability of 0."""
    if not isinstance(result, dict):
        return None
    tops = [dig(top, "candidates") or [] for top in result.get("topCandidates") or ()]
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or ()):
        alternatives = tops[i] if i < len(tops) else []
        content.append({**_token(chosen), "top_logprobs": [_token(t) for t in alternatives]})
    return {"content": content, "refusal": None}


def _token(entry: dict) -> dict:
    text = entry.get("token") or ""
    return {"token": text, "logprob": entry.get("logProbability", 0.0),
            "bytes": list(text.encode())}


def usage(metadata: Any) -> dict | None:
    """usageMetadata -> usage; thinking tokens are completion tokens, as OpenAI counts them."""
    if not isinstance(metadata, dict):
        return None
    thoughts = metadata.get("thoughtsTokenCount") or 0
    prompt = (metadata.get("promptTokenCount") or 0) + \
        (metadata.get("toolUsePromptTokenCount") or 0)
    return usage_dict(prompt, (metadata.get("candidatesTokenCount") or 0) + thoughts,
                      prompt_tokens_details={"cached_tokens":
                                             metadata.get("cachedContentTokenCount") or 0},
                      completion_tokens_details={"reasoning_tokens": thoughts})


def blocked(payload: dict) -> bool:
    """A prompt Gemini refused to answer: no candidates, a blockReason in promptFeedback."""
    return not payload.get("candidates") and bool(dig(payload, "promptFeedback", "blockReason"))


def choices(payload: dict, n: int) -> list[dict]:
    """OpenAI choices for a whole answer; a blocked prompt gives n empty content_filter ones."""
    if blocked(payload):
        return [{"index": i, "message": {"role": "assistant", "content": None},
                 "finish_reason": "content_filter"} for i in range(n)]
    candidates = payload.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise ValueError("the answer has no candidates and no promptFeedback.blockReason")
    result = []
    for position, candidate in enumerate(candidates):
        texts, calls, thoughts = split_parts(candidate)
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts else None}
        if thoughts:
            message["reasoning_content"] = thoughts
        signature = text_signature(candidate)
        if signature:
            message["extra_content"] = signed(signature)
        if calls:
            message["tool_calls"] = [tool_call(p) for p in calls]
        choice = {"index": candidate_index(candidate, position), "message": message,
                  "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls))}
        if candidate.get("logprobsResult") is not None:
            choice["logprobs"] = logprobs(candidate["logprobsResult"])
        result.append(choice)
    return result


class StreamState:
    """What a Gemini stream needs remembered across chunks: tool calls per candidate."""

    def __init__(self, n: int):
        self.n = n
        self.calls: dict[int, int] = {}

    def fragment(self, payload: dict) -> dict | None:
        """One OpenAI fragment for one `data:` chunk, or None when it carries nothing."""
        if blocked(payload):
            deltas = [{"index": i, "delta": {}, "finish_reason": "content_filter"}
                      for i in range(self.n)]
        else:
            deltas = [d for position, candidate in enumerate(payload.get("candidates") or ())
                      if (d := self.delta(candidate, position)) is not None]
        fragment: dict[str, Any] = {"choices": deltas}
        counted = usage(payload.get("usageMetadata"))
        if counted:
            fragment["usage"] = counted
        return fragment if deltas or counted else None

    def delta(self, candidate: dict, position: int) -> dict | None:
        index = candidate_index(candidate, position)
        texts, calls, thoughts = split_parts(candidate)
        delta: dict[str, Any] = {"reasoning_content": thoughts} if thoughts else {}
        if texts and "".join(texts):
            delta["content"] = "".join(texts)
        signature = text_signature(candidate)
        if signature:
            delta["extra_content"] = signed(signature)
        if calls:
            first = self.calls.get(index, 0)
            delta["tool_calls"] = [{"index": first + k, **tool_call(p)}
                                   for k, p in enumerate(calls)]
            self.calls[index] = first + len(calls)
        reason = candidate.get("finishReason")
        choice = {"index": index, "delta": delta,
                  "finish_reason": finish_reason(reason, index in self.calls) if reason else None}
        if candidate.get("logprobsResult") is not None:
            choice["logprobs"] = logprobs(candidate["logprobsResult"])
        return choice if delta or reason else None
