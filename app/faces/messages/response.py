"""The service's answers and errors in Anthropic's Messages shapes, for translated targets.

- Ids: a chat id becomes `msg_<id>`; tool call ids are kept as they are (a client's tool
  loop sends them back, and they are translated back unchanged).
- Stop reasons: stop -> end_turn (or stop_sequence when the face cut the text at one of
  the client's stop sequences), length -> max_tokens, tool_calls -> tool_use,
  content_filter -> refusal.
- Usage: Anthropic's input_tokens exclude cache reads and writes, which OpenAI's
  prompt_tokens include; the cache counts are reported apart.
- `reasoning_content` (DeepSeek, vLLM, ...) becomes a thinking block; it has no signature.
"""
from __future__ import annotations

from typing import Any

from app.errors import ProxyError
from app.jsonfast import loads
from app.providers.base import StopScanner

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               402: "billing_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
OVERLOADED = 529


def message_id(completion_id: str | None) -> str:
    text = completion_id or ""
    return text if text.startswith("msg_") else "msg_" + text.removeprefix("chatcmpl-")


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason, "end_turn")


def usage_of(usage: dict | None) -> dict[str, Any]:
    usage = usage or {}
    read = usage.get("cache_read_input_tokens") or (
        usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    created = usage.get("cache_creation_input_tokens") or 0
    return {"input_tokens": max(0, (usage.get("prompt_tokens") or 0) - read - created),
            "output_tokens": usage.get("completion_tokens") or 0,
            "cache_creation_input_tokens": created, "cache_read_input_tokens": read,
            "server_tool_use": None}


def reasoning_of(delta: dict) -> str | None:
    return delta.get("reasoning_content") or delta.get("reasoning")


def tool_input(arguments: str | None) -> Any:
    """A call's arguments as the object Anthropic sends; text that is not JSON stays text
    under `input` rather than being lost."""
    try:
        value = loads(arguments or "{}")
    except ValueError:
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


def tool_use_block(call: dict) -> dict:
    function = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
            "input": tool_input(function.get("arguments")), "caller": {"type": "direct"}}


def text_block(text: str) -> dict:
    return {"type": "text", "text": text, "citations": None}


def thinking_block(thinking: str) -> dict:
    return {"type": "thinking", "thinking": thinking, "signature": ""}


def message(completion: dict, model: str, stops: list[str]) -> dict[str, Any]:
    """A chat.completion as an Anthropic Message (its first choice; n is always 1 here)."""
    choice = (completion.get("choices") or [{}])[0]
    reply = choice.get("message") or {}
    content: list[dict] = []
    reasoning = reasoning_of(reply)
    if reasoning:
        content.append(thinking_block(reasoning))
    scanner = StopScanner(stops)
    text = scanner.cut(reply.get("content") or "")
    stopped_by = scanner.matched
    if text:
        content.append(text_block(text))
    if stopped_by is None:
        content += [tool_use_block(call) for call in reply.get("tool_calls") or ()]
    return skeleton(message_id(completion.get("id")), model, content,
                    "stop_sequence" if stopped_by else stop_reason(choice.get("finish_reason")),
                    stopped_by, usage_of(completion.get("usage")))


def skeleton(identifier: str, model: str, content: list[dict], reason: str | None,
             stop_sequence: str | None, usage: dict) -> dict[str, Any]:
    return {"id": identifier, "type": "message", "role": "assistant", "content": content,
            "model": model, "stop_reason": reason, "stop_sequence": stop_sequence,
            "stop_details": None, "container": None,
            "usage": {**usage, "cache_creation": None, "inference_geo": None,
                      "service_tier": "standard"}}


def error_type(error: ProxyError) -> str:
    if error.code == "overloaded_error":
        return "overloaded_error"
    return ERROR_TYPES.get(error.status, "api_error" if error.status >= 500 else
                           "invalid_request_error")


def error_status(error: ProxyError) -> int:
    """The status Anthropic gives the error's type: 529 for overloaded_error, and 500 for an
    api_error the chat path reports as 502 (an upstream fault; timeouts stay 504)."""
    if error.code == "overloaded_error":
        return OVERLOADED
    return 500 if error.status == 502 else error.status


def error_body(error: ProxyError, request_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(error), "message": error.message},
            "request_id": request_id}
