"""A Responses-API request as the service's chat request (for models that do not speak it).

Input items become chat messages (function calls and their outputs keep their `call_id`s),
`namespace` tool groups are flattened into function tools whose names map back, reasoning
items carry their summary and (in `encrypted_content`) thinking signatures to the next
assistant turn, and `text.format` / `reasoning` / `max_output_tokens` become their chat
parameters.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from app.errors import InvalidRequestError

NAMESPACE_SEPARATOR = "__"
# OpenAI's built-in web search, which the chat API asks for with `web_search_options`.
WEB_SEARCH_TOOLS = ("web_search", "web_search_preview", "web_search_2025_08_26",
                    "web_search_preview_2025_03_11")
LOCATION_FIELDS = ("city", "country", "region", "timezone")
# Responses media part -> (chat part type, the field it needs, that field's chat name, and
# an optional field kept).
MEDIA_PARTS = {"input_image": ("image_url", "image_url", "url", "detail"),
               "input_file": ("file", "file_data", "file_data", "filename")}
# Our own encrypted_content: thinking blocks (text and signature) and tool calls' extras
# (Gemini's thought signatures) for the next turn.
THINKING_PREFIX = "sbthink:"
# Responses fields that are chat parameters under the same name.
SAME_NAME = ("temperature", "top_p", "parallel_tool_calls", "user", "stream", "metadata",
             "prompt_cache_key", "safety_identifier", "service_tier")


@dataclass
class ToolNames:
    """Flattened function names and the (namespace, name) each stands for."""

    flat: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def flatten(self, namespace: str | None, name: str) -> str:
        flat = f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name
        self.flat[flat] = (namespace, name)
        return flat

    def original(self, flat: str) -> tuple[str | None, str]:
        return self.flat.get(flat, (None, flat))


def bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return list(raw)


def chat_request(body: dict[str, Any], items: list[dict[str, Any]]) -> tuple[dict, ToolNames]:
    """The chat params (OpenAI chat shape) for a Responses request whose whole context is
    `items` (earlier turns included), and the tool-name map for its answer."""
    names = ToolNames()
    params: dict[str, Any] = {"model": body["model"]}
    search = [t for t in body.get("tools") or () if t.get("type") in WEB_SEARCH_TOOLS]
    tools = chat_tools([t for t in body.get("tools") or () if t not in search], names)
    messages = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(chat_messages(items, names))
    if not messages:
        raise bad("input must hold at least one item.", "input", "missing_required_parameter")
    params["messages"] = messages
    if tools:
        params["tools"] = tools
    if search:  # each provider's own search (Anthropic's server tool, Gemini's grounding)
        params["web_search_options"] = web_search_options(search[0])
    if body.get("tool_choice") is not None:
        params["tool_choice"] = chat_tool_choice(body["tool_choice"], names)
    for key in SAME_NAME:
        if body.get(key) is not None:
            params[key] = body[key]
    if body.get("max_output_tokens") is not None:
        params["max_completion_tokens"] = body["max_output_tokens"]
    response_format = chat_response_format((body.get("text") or {}).get("format"))
    if response_format:
        params["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        params["reasoning_effort"] = effort
    if params.get("stream"):
        params["stream_options"] = {"include_usage": True}
    return params, names


def web_search_options(tool: dict) -> dict:
    """A Responses web search tool as chat's `web_search_options` (its location nested)."""
    options = {}
    if tool.get("search_context_size"):
        options["search_context_size"] = tool["search_context_size"]
    location = tool.get("user_location") or {}
    approximate = {key: location[key] for key in LOCATION_FIELDS if location.get(key)}
    if approximate:
        options["user_location"] = {"type": "approximate", "approximate": approximate}
    return options


def chat_tools(tools, names: ToolNames) -> list[dict]:
    chat = []
    for position, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            chat.append(_function(tool, None, names))
        elif kind == "namespace":
            for inner in tool.get("tools") or ():
                if inner.get("type") != "function":
                    raise bad(f"tool {inner.get('type')!r} inside namespace {tool.get('name')!r}"
                              " has no equivalent for this model.", f"tools[{position}]")
                chat.append(_function(inner, tool.get("name"), names))
        else:
            raise bad(f"tool {kind!r} is one of OpenAI's built-in tools and has no equivalent "
                      "for this model; remove it, or set drop_params: true to drop it.",
                      f"tools[{position}]", "unsupported_tool")
    return chat


def _function(tool: dict, namespace: str | None, names: ToolNames) -> dict:
    function = {"name": names.flatten(namespace, tool["name"])}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def chat_tool_choice(choice: Any, names: ToolNames) -> Any:
    if isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "function":
        flat = names.flatten(choice.get("namespace"), choice["name"])
        return {"type": "function", "function": {"name": flat}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    raise bad(f"tool_choice {kind!r} names a built-in tool this model does not have.",
              "tool_choice")


def chat_response_format(text_format: dict | None) -> dict | None:
    if not text_format or text_format.get("type") == "text":
        return None
    if text_format["type"] == "json_object":
        return {"type": "json_object"}
    schema = {key: text_format[key] for key in ("name", "description", "schema", "strict")
              if key in text_format}
    return {"type": "json_schema", "json_schema": schema}


def chat_messages(items: list[dict], names: ToolNames) -> list[dict]:
    """Chat messages for input items; consecutive function calls (and the reasoning before
    them) join one assistant message, as a chat model produced them."""
    messages: list[dict] = []
    reasoning: list[dict] = []
    extras: dict[str, Any] = {}   # call id -> the provider's extra_content, wherever it came
    for item in items:
        if item.get("type") == "reasoning":
            extras.update(opaque_reasoning(item.get("encrypted_content"))[1])
    for position, item in enumerate(items):
        kind = item.get("type", "message")
        where = f"input[{position}]"
        if kind == "message":
            message = _message(item, where)
            if message["role"] == "assistant":
                _attach_reasoning(message, reasoning)
            messages.append(message)
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function", "function": {
                "name": names.flatten(item.get("namespace"), item["name"]),
                "arguments": item.get("arguments") or "{}"}}
            if item["call_id"] in extras:
                call["extra_content"] = extras[item["call_id"]]
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and not reasoning:
                last.setdefault("tool_calls", []).append(call)
            else:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                _attach_reasoning(message, reasoning)
                messages.append(message)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _output_text(item.get("output"))})
        elif kind == "reasoning":
            reasoning.append(item)
        else:
            raise bad(f"input item type {kind!r} is not supported for this model.",
                      f"{where}.type", "unsupported_item")
    return messages


def check_call_outputs(items: list[dict]) -> None:
    """Every function_call_output answers a function_call earlier in the context."""
    calls: set[str] = set()
    for position, item in enumerate(items):
        if item.get("type") == "function_call":
            calls.add(item.get("call_id"))
        elif item.get("type") == "function_call_output" and item.get("call_id") not in calls:
            raise bad(f"No tool call found for function call output with call_id "
                      f"{item.get('call_id')!r}.", f"input[{position}].call_id")


def _message(item: dict, where: str) -> dict:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        text = content if isinstance(content, str) else "".join(
            part.get("text") or part.get("refusal") or "" for part in content or ())
        return {"role": "assistant", "content": text}
    chat_role = "system" if role == "developer" else role
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    return {"role": chat_role, "content": [_part(part, f"{where}.content[{i}]")
                                           for i, part in enumerate(content)]}


def _part(part: dict, where: str) -> dict:
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": part["text"]}
    if kind in MEDIA_PARTS:
        chat_type, needed, chat_name, optional = MEDIA_PARTS[kind]
        if not part.get(needed):
            raise bad(f"{kind} needs {needed} here (file ids and file URLs name OpenAI's "
                      "file store).", f"{where}.{needed}")
        media = {chat_name: part[needed]}
        if part.get(optional):
            media[optional] = part[optional]
        return {"type": chat_type, chat_type: media}
    raise bad(f"content part type {kind!r} is not supported for this model.", f"{where}.type",
              "unsupported_item")


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "".join(part.get("text", "") for part in output or () if isinstance(part, dict))


def _attach_reasoning(message: dict, reasoning: list[dict]) -> None:
    """Reasoning items before an assistant turn become its reasoning text and thinking blocks."""
    if not reasoning:
        return
    texts, blocks = [], []
    for item in reasoning:
        texts.extend(s.get("text", "") for s in item.get("summary") or ())
        blocks.extend(opaque_reasoning(item.get("encrypted_content"))[0])
    reasoning.clear()
    if texts:
        message["reasoning_content"] = "\n\n".join(texts)
    if blocks:
        message["thinking_blocks"] = blocks


def encrypted_content(blocks: list[dict], extras: dict[str, Any] | None = None) -> str:
    """Thinking blocks (with their signatures) and the provider's extras of tool calls
    (Gemini's thought signatures, by call id) as an opaque encrypted_content string."""
    payload = {"thinking_blocks": blocks, "tool_call_extras": extras or {}}
    return THINKING_PREFIX + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def opaque_reasoning(content: Any) -> tuple[list[dict], dict[str, Any]]:
    """(thinking blocks, tool-call extras) in one of our encrypted_content strings; nothing
    for anything else (another provider's opaque reasoning means nothing to this model)."""
    if not isinstance(content, str) or not content.startswith(THINKING_PREFIX):
        return [], {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(content[len(THINKING_PREFIX):]))
    except (ValueError, binascii.Error):
        return [], {}
    if not isinstance(payload, dict):
        return [], {}
    blocks, extras = payload.get("thinking_blocks"), payload.get("tool_call_extras")
    return (blocks if isinstance(blocks, list) else [],
            extras if isinstance(extras, dict) else {})
