"""OpenAI chat request -> Cohere v2 `/v2/chat` body.

Parameters are translated from tables: a value that passes unchanged under Cohere's name,
or a converter for values Cohere spells differently. Values Cohere cannot express at all
are refused earlier (see `REFUSED_VALUES`), so nothing here guesses.
"""
from __future__ import annotations

from typing import Any, Callable

from app.errors import InvalidRequestError
from app.providers.base import message_text, stop_list

# OpenAI name -> Cohere name, value unchanged. Later rows win when two name the same Cohere
# field, so the newer max_completion_tokens beats max_tokens when a client sends both.
SAME_VALUE = {
    "temperature": "temperature", "seed": "seed", "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty", "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens", "logprobs": "logprobs", "stream": "stream",
    "top_k": "k",
}
# Cohere's own request fields, passed through for clients that know them.
NATIVE_PARAMS = frozenset({"k", "safety_mode", "documents", "citation_options", "strict_tools",
                           "thinking", "priority"})
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


def _named_choice(choice: Any) -> str | None:
    """The function a tool_choice / function_call object names, if it names one."""
    if not isinstance(choice, dict):
        return None
    function = choice.get("function") if "function" in choice else choice
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) and name else None


# OpenAI param -> predicate: True when Cohere has no way to express the value.
# reasoning_effort -> Cohere's `thinking` (a token budget; "none" turns reasoning off).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576,
                    "xhigh": 32768}

REFUSED_VALUES: dict[str, Callable[[Any], bool]] = {
    "reasoning_effort": lambda v: v != "none" and v not in THINKING_BUDGETS,
    "temperature": lambda v: v > 1,                     # Cohere's range is 0..1
    "frequency_penalty": lambda v: not 0 <= v <= 1,     # Cohere's range is 0..1
    "presence_penalty": lambda v: not 0 <= v <= 1,
    "seed": lambda v: v < 0,
    "top_logprobs": lambda v: v > 0,                    # only the chosen token's logprob
    "response_format": lambda v: v.get("type") not in RESPONSE_FORMATS,
    "tool_choice": lambda v: isinstance(v, dict) and _named_choice(v) is None,
    "function_call": lambda v: isinstance(v, dict) and _named_choice(v) is None,
    "tools": lambda v: any(t.get("type", "function") != "function" for t in v),
}


def _p(top_p: float) -> dict:
    # Cohere's p must lie in 0.01..0.99: clamp to the nearest value it accepts.
    return {"p": min(max(top_p, 0.01), 0.99)}


def _stop(stop: Any) -> dict:
    sequences = stop_list(stop)
    return {"stop_sequences": sequences} if sequences else {}


def _response_format(value: dict) -> dict:
    if value["type"] != "json_schema":
        return {"response_format": {"type": value["type"]}}
    schema = (value.get("json_schema") or {}).get("schema")
    extra = {"json_schema": schema} if isinstance(schema, dict) else {}
    return {"response_format": {"type": "json_object", **extra}}


def _thinking(effort: str) -> dict:
    if effort == "none":
        return {"thinking": {"type": "disabled"}}
    return {"thinking": {"type": "enabled", "token_budget": THINKING_BUDGETS[effort]}}


CONVERTED: dict[str, Callable[[Any], dict]] = {
    "top_p": _p, "stop": _stop, "response_format": _response_format,
    "reasoning_effort": _thinking,   # Cohere's own `thinking`, when sent, wins
}


def wire_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    wire: dict[str, Any] = {"model": model, "messages": messages(body["messages"])}
    for openai_name, cohere_name in SAME_VALUE.items():
        if body.get(openai_name) is not None:
            wire[cohere_name] = body[openai_name]
    for openai_name, convert in CONVERTED.items():
        if body.get(openai_name) is not None:
            wire.update(convert(body[openai_name]))
    wire.update({k: v for k, v in body.items() if k in NATIVE_PARAMS and v is not None})
    wire.update(tool_fields(body))
    return wire


# -- tools ---------------------------------------------------------------------------------
def _function(spec: dict) -> dict:
    # Cohere requires `parameters`; OpenAI lets a function without arguments omit them.
    function = {"name": spec["name"],
                "parameters": spec.get("parameters") or {"type": "object", "properties": {}}}
    if spec.get("description"):
        function["description"] = spec["description"]
    return {"type": "function", "function": function}


def tool_fields(body: dict[str, Any]) -> dict[str, Any]:
    """tools + legacy functions -> `tools`; tool_choice / function_call -> `tool_choice`.

    A named function becomes `REQUIRED` with the tool list narrowed to that function, which
    is what naming it means; Cohere has no other way to name one.
    """
    specs = [t["function"] for t in body.get("tools") or ()] + list(body.get("functions") or ())
    choice = body.get("tool_choice") if body.get("tool_choice") is not None \
        else body.get("function_call")
    fields: dict[str, Any] = {}
    named = _named_choice(choice)
    if named is not None:
        specs = [s for s in specs if s["name"] == named]
        if not specs:
            raise InvalidRequestError(f"tool_choice names the function {named!r}, which is not "
                                      f"among the tools sent", param="tool_choice")
        fields["tool_choice"] = "REQUIRED"
    elif choice == "required":
        if not specs:
            raise InvalidRequestError("tool_choice 'required' needs tools", param="tool_choice")
        fields["tool_choice"] = "REQUIRED"
    elif choice == "none" and specs:
        fields["tool_choice"] = "NONE"
    if specs:
        fields["tools"] = [_function(s) for s in specs]
        if all(s.get("strict") is True for s in specs):
            fields["strict_tools"] = True
    return fields


# -- messages ------------------------------------------------------------------------------
def messages(openai_messages: list[dict]) -> list[dict]:
    """OpenAI messages -> v2 messages, in order (system messages stay where they stand)."""
    legacy_calls: dict[str, list[str]] = {}   # legacy function_call ids awaiting their result
    return [_ROLES[m["role"]](m, position, legacy_calls)
            for position, m in enumerate(openai_messages)]


def _system(m: dict, position: int, legacy_calls: dict) -> dict:
    return {"role": "system", "content": message_text(m.get("content"))}


def _user(m: dict, position: int, legacy_calls: dict) -> dict:
    content = m.get("content")
    if isinstance(content, list):
        content = [_user_part(part, f"messages[{position}].content[{i}]")
                   for i, part in enumerate(content)]
    return {"role": "user", "content": content if content is not None else ""}


def _user_part(part: dict, where: str) -> dict:
    kind = part["type"]
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    image = part.get("image_url")
    if kind == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str):
        return {"type": "image_url", "image_url": {k: image[k] for k in ("url", "detail")
                                                   if image.get(k) is not None}}
    raise InvalidRequestError(f"Invalid parameter '{where}': Cohere accepts text and image_url "
                              f"content parts (got a malformed or {kind!r} part).", param=where)


def _assistant(m: dict, position: int, legacy_calls: dict) -> dict:
    calls = [_tool_call(c, f"messages[{position}].tool_calls[{i}]")
             for i, c in enumerate(m.get("tool_calls") or ())]
    if m.get("function_call"):
        call_id = f"call_legacy_{position}"
        call = _tool_call({"id": call_id, "function": m["function_call"]},
                          f"messages[{position}].function_call")
        legacy_calls.setdefault(call["function"]["name"], []).append(call_id)
        calls.append(call)
    text = message_text(m.get("content"))
    if not calls:
        return {"role": "assistant", "content": text}
    # Text beside tool calls is the model's plan for them: Cohere's `tool_plan`.
    return {"role": "assistant", "tool_calls": calls, **({"tool_plan": text} if text else {})}


def _tool_call(call: Any, where: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not (isinstance(function, dict) and isinstance(call.get("id"), str)
            and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments", ""), str)):
        raise InvalidRequestError(f"Invalid parameter '{where}': a tool call needs an id and a "
                                  f"function with a name and string arguments.", param=where)
    return {"id": call["id"], "type": "function",
            "function": {"name": function["name"], "arguments": function.get("arguments") or "{}"}}


def _tool(m: dict, position: int, legacy_calls: dict) -> dict:
    if not isinstance(m.get("tool_call_id"), str):
        where = f"messages[{position}].tool_call_id"
        raise InvalidRequestError(f"Invalid parameter '{where}': is required for a tool message.",
                                  param=where, code="missing_required_parameter")
    return {"role": "tool", "tool_call_id": m["tool_call_id"],
            "content": message_text(m.get("content"))}


def _function_result(m: dict, position: int, legacy_calls: dict) -> dict:
    """Legacy `role: function`: the result of the oldest unanswered call of that name."""
    waiting = legacy_calls.get(m.get("name") or "")
    call_id = waiting.pop(0) if waiting else f"call_legacy_{position}"
    return {"role": "tool", "tool_call_id": call_id, "content": message_text(m.get("content"))}


_ROLES = {"system": _system, "developer": _system, "user": _user, "assistant": _assistant,
          "tool": _tool, "function": _function_result}
