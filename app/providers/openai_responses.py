"""OpenAI's Responses API spoken natively (OpenAI, Azure, and compatible servers that
declare `api: responses`): the client's body goes upstream with the deployment's model
name, and the native answer or stream is read into a chat.completion (or chunk
fragments) only for usage, cost and the ledger. Its `input_tokens` endpoint counts a chat
request's prompt, written as Responses input items (`count_body`).
"""
from __future__ import annotations

from typing import Any, Iterable

from app.jsonfast import loads
from app.providers.base import (NativeRequest, StreamTranslator, Target, UpstreamRequest,
                                chat_completion, message_text, usage_dict)

FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def speaks_responses(target: Target, official: bool) -> bool:
    """A deployment's `api` setting decides; without one, only the provider's own API
    (`official`) speaks Responses, not a compatible server it points at."""
    declared = target.settings.get("api")
    return declared == "responses" if declared else official


def native_request(native: NativeRequest, target: Target, url: str, headers: dict,
                   model: str | None) -> UpstreamRequest:
    """The client's body with the deployment's model (or none, where the URL names it)."""
    body = {**native.body, "model": model} if model else dict(native.body)
    return UpstreamRequest("POST", url, headers, body, stream=bool(body.get("stream")))


def chat_usage(usage: Any) -> dict | None:
    """Responses usage as chat usage (cached and reasoning tokens kept)."""
    if not isinstance(usage, dict):
        return None
    cached = (usage.get("input_tokens_details") or {}).get("cached_tokens")
    reasoning = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    return usage_dict(usage.get("input_tokens"), usage.get("output_tokens"),
                      prompt_tokens_details={"cached_tokens": cached} if cached else None,
                      completion_tokens_details=(
                          {"reasoning_tokens": reasoning} if reasoning else None))


def finish_reason(response: dict, has_calls: bool) -> str:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete":
        return FINISH_REASONS.get(reason, "length")
    return "tool_calls" if has_calls else "stop"


def _call(item: dict) -> dict:
    return {"id": item.get("call_id"), "type": "function",
            "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}}


def completion_from_response(payload: Any, model: str) -> dict:
    """A Responses `response` object read as the chat.completion it amounts to."""
    if not isinstance(payload, dict) or not isinstance(payload.get("output"), list):
        raise ValueError("the answer has no output list")
    texts, calls, reasoning = [], [], []
    for item in payload["output"]:
        kind = item.get("type")
        if kind == "message":
            texts.extend(part.get("text", "") for part in item.get("content") or ()
                         if part.get("type") == "output_text")
        elif kind == "function_call":
            calls.append(_call(item))
        elif kind == "reasoning":
            reasoning.extend(s.get("text", "") for s in item.get("summary") or ())
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(payload, bool(calls))}
    return chat_completion(payload.get("model") or model, [choice], chat_usage(payload.get("usage")),
                           created=payload.get("created_at"))


class ResponsesStreamReader(StreamTranslator):
    """Responses stream events read as chunk fragments (text, tool calls, finish, usage)."""

    def __init__(self, error):
        self._error = error                 # (status, payload) -> UpstreamError
        self._calls: dict[str, int] = {}    # item id -> tool-call index

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        payload = loads(data)
        kind = payload.get("type") or event
        if kind == "response.output_text.delta":
            return (_fragment({"content": payload.get("delta") or ""}),)
        if kind == "response.reasoning_summary_text.delta":
            return (_fragment({"reasoning_content": payload.get("delta") or ""}),)
        if kind == "response.output_item.added" and \
                (payload.get("item") or {}).get("type") == "function_call":
            item = payload["item"]
            index = self._calls.setdefault(item.get("id"), len(self._calls))
            return (_fragment({"tool_calls": [{"index": index, **_call(item)}]}),)
        if kind == "response.function_call_arguments.delta":
            index = self._calls.get(payload.get("item_id"), 0)
            return (_fragment({"tool_calls": [{"index": index, "function": {
                "arguments": payload.get("delta") or ""}}]}),)
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response") or {}
            fragment = _fragment({}, finish_reason(response, bool(self._calls)))
            usage = chat_usage(response.get("usage"))
            if usage:
                fragment["usage"] = usage
            return (fragment,)
        if kind == "response.failed":
            error = (payload.get("response") or {}).get("error") or {}
            raise self._error(502, {"error": error})
        if kind == "error":
            raise self._error(502, {"error": payload})
        return ()


def _fragment(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# -- counting a chat prompt: POST /responses/input_tokens ---------------------------------
def count_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat request's prompt (messages and tools) as an input_tokens request."""
    wire: dict[str, Any] = {"model": model, "input": input_items(body["messages"])}
    functions = [tool.get("function") or {} for tool in body.get("tools") or ()
                 if tool.get("type", "function") == "function"]
    functions += body.get("functions") or []
    if functions:
        wire["tools"] = [{"type": "function", "name": f.get("name"),
                          "description": f.get("description"),
                          "parameters": f.get("parameters"), "strict": f.get("strict")}
                         for f in functions]
    return wire


def input_items(messages: list[dict]) -> list[dict]:
    """Chat messages as Responses input items: messages, function calls and their outputs
    (a legacy function call and its result share a made-up call id)."""
    items: list[dict] = []
    legacy_call = ""
    for position, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id"),
                          "output": message_text(content)})
        elif role == "function":
            items.append({"type": "function_call_output", "call_id": legacy_call,
                          "output": message_text(content)})
        elif role == "assistant":
            text = message_text(content) or message.get("refusal") or ""
            if text:
                items.append({"role": "assistant", "content": text})
            calls = [(call.get("id"), call.get("function") or {})
                     for call in message.get("tool_calls") or ()]
            if message.get("function_call"):
                legacy_call = f"call_legacy_{position}"
                calls.append((legacy_call, message["function_call"]))
            items += [{"type": "function_call", "call_id": call_id,
                       "name": function.get("name"), "arguments": function.get("arguments") or ""}
                      for call_id, function in calls]
        else:
            items.append({"role": role, "content": content if isinstance(content, str)
                          else [part for part in map(input_part, content or ()) if part]})
    return items


def input_part(part: dict) -> dict | None:
    """A chat content part as a Responses input part; None for what has no counterpart."""
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text") or ""}
    if kind == "image_url":
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        return {"type": "input_image", "image_url": url, "detail": "auto"}
    if kind == "file" and isinstance(part.get("file"), dict):
        return {"type": "input_file", **part["file"]}
    return None
