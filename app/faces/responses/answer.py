"""The service's chat.completion as a Responses-API `response` object.

Output items in OpenAI's order (reasoning, message, function calls), finish states mapped
(`length` -> incomplete/max_output_tokens, `content_filter` -> incomplete/content_filter),
usage renamed, and the request's settings echoed as OpenAI echoes them.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from app.faces.responses.request import ToolNames, encrypted_content

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Settings a response echoes, with OpenAI's value when the request left them out.
ECHOED = {"instructions": None, "max_output_tokens": None, "max_tool_calls": None,
          "metadata": {}, "parallel_tool_calls": True, "previous_response_id": None,
          "prompt_cache_key": None, "safety_identifier": None, "service_tier": "default",
          "store": True, "temperature": 1.0, "tool_choice": "auto", "tools": [],
          "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "user": None,
          "background": False}
PROXY_ID_PREFIX = "resp_sb_"


def response_id() -> str:
    """Ids the proxy issues: OpenAI's are `resp_` and hex digits, so `s` never starts them."""
    return PROXY_ID_PREFIX + uuid.uuid4().hex


def issued_by_proxy(identifier: str) -> bool:
    return identifier.startswith(PROXY_ID_PREFIX)


def item_id(kind: str) -> str:
    return f"{kind}_{uuid.uuid4().hex}"


def shell(body: dict[str, Any], identifier: str, created_at: int, model: str) -> dict:
    """A response with no output yet (`in_progress`), the request's settings echoed."""
    response = {"id": identifier, "object": "response", "created_at": created_at,
                "status": "in_progress", "completed_at": None, "error": None,
                "incomplete_details": None, "model": model, "output": []}
    for key, default in ECHOED.items():
        value = body.get(key)
        response[key] = default if value is None else value
    reasoning = body.get("reasoning") or {}
    response["reasoning"] = {"effort": reasoning.get("effort"),
                             "summary": reasoning.get("summary")}
    response["text"] = {"format": {"type": "text"}, **(body.get("text") or {})}
    return response


def status_of(finish_reason: str | None) -> tuple[str, dict | None]:
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def finished(response: dict, output: list[dict], finish_reason: str | None,
             usage: dict | None) -> dict:
    """`response` with its output, final status and usage."""
    status, details = status_of(finish_reason)
    return {**response, "status": status, "incomplete_details": details,
            "completed_at": int(time.time()) if status == "completed" else None,
            "output": output, "usage": responses_usage(usage or {})}


def responses_usage(usage: dict) -> dict:
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": usage.get("total_tokens") or prompt + completion}


def wants_encrypted(body: dict) -> bool:
    return "reasoning.encrypted_content" in (body.get("include") or ())


def reasoning_item(identifier: str, text: str, blocks: list[dict], body: dict,
                   extras: dict | None = None) -> dict:
    """A reasoning item: its summary when the request asked for one, and the thinking blocks
    (signatures included) and tool calls' extras as encrypted_content when it asked for that."""
    item = {"id": identifier, "type": "reasoning", "summary": []}
    if text and (body.get("reasoning") or {}).get("summary"):
        item["summary"] = [{"type": "summary_text", "text": text}]
    if (blocks or extras) and wants_encrypted(body):
        item["encrypted_content"] = encrypted_content(blocks, extras)
    return item


def call_extras(calls: list[dict]) -> dict:
    """A provider's extra_content of tool calls (Gemini's thought signatures) by call id."""
    return {call["id"]: call["extra_content"] for call in calls
            if call.get("id") and call.get("extra_content")}


def message_item(identifier: str, text: str | None, refusal: str | None, status: str) -> dict:
    content = []
    if text or not refusal:
        content.append({"type": "output_text", "text": text or "", "annotations": [],
                        "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": identifier, "type": "message", "role": "assistant", "status": status,
            "content": content}


def call_item(identifier: str, call: dict, names: ToolNames, status: str = "completed") -> dict:
    function = call.get("function") or {}
    namespace, name = names.original(function.get("name") or "")
    item = {"id": identifier, "type": "function_call", "status": status,
            "call_id": call.get("id") or identifier, "name": name,
            "arguments": function.get("arguments") or ""}
    if namespace:
        item["namespace"] = namespace
    return item


def output_items(message: dict, finish_reason: str | None, body: dict,
                 names: ToolNames) -> list[dict]:
    """A chat message's content as Responses output items, each with a fresh id."""
    output = []
    reasoning = message.get("reasoning_content") or ""
    blocks = message.get("thinking_blocks") or []
    calls = message.get("tool_calls") or []
    extras = call_extras(calls)
    if reasoning or blocks or (extras and wants_encrypted(body)):
        output.append(reasoning_item(item_id("rs"), reasoning, blocks, body, extras))
    text, refusal = message.get("content"), message.get("refusal")
    if text or refusal or not calls:
        status = "incomplete" if finish_reason in INCOMPLETE_REASONS else "completed"
        output.append(message_item(item_id("msg"), text, refusal, status))
    output.extend(call_item(item_id("fc"), call, names) for call in calls)
    return output


def response_from_completion(completion: dict, body: dict, names: ToolNames,
                             identifier: str | None = None) -> dict:
    """The whole `response` for a chat.completion answering `body`."""
    choice = (completion.get("choices") or [{}])[0]
    finish_reason = choice.get("finish_reason")
    output = output_items(choice.get("message") or {}, finish_reason, body, names)
    base = shell(body, identifier or response_id(), int(time.time()), body["model"])
    return finished(base, output, finish_reason, completion.get("usage"))
