"""OpenAI chat request -> Gemini `GenerateContentRequest` (v1beta).

Gemini wants strictly alternating `user` / `model` turns, system text apart in
`systemInstruction`, tool results as `functionResponse` parts naming the function (it
has no call ids), and sampling settings inside `generationConfig`. Anything a client
sends that cannot be expressed is refused with a 400 naming the field, never dropped.
`reasoning_effort` (or an Anthropic-style `thinking` object) becomes
`generationConfig.thinkingConfig`: a `thinkingLevel` for Gemini 3 models, a
`thinkingBudget` for earlier ones (the budgets Google's own OpenAI-compatible endpoint
uses), with the thoughts asked back (`includeThoughts`) so they reach the client as
`reasoning_content`.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from app.errors import InvalidRequestError
from app.jsonfast import loads
from app.providers.base import message_text, stop_list

# OpenAI param -> generationConfig field; a later entry wins (max_completion_tokens).
GENERATION_PARAMS: dict[str, str] = {
    "temperature": "temperature", "top_p": "topP", "top_k": "topK", "n": "candidateCount",
    "max_tokens": "maxOutputTokens", "max_completion_tokens": "maxOutputTokens",
    "stop": "stopSequences", "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty", "seed": "seed",
    "logprobs": "responseLogprobs", "top_logprobs": "logprobs",
}
VALUE_FORMS: dict[str, Callable[[Any], Any]] = {"stop": stop_list}

TURN_ROLES = {"user": "user", "tool": "user", "function": "user", "assistant": "model"}
SYSTEM_ROLES = ("system", "developer")
OPENING_TURN = "."
CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# An image URL's MIME type, told from its extension; without one, fileData goes without
# mimeType (optional in the API) and Gemini reads the type the URL answers with.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".gif": "image/gif", ".heic": "image/heic",
               ".heif": "image/heif"}


def refuse(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid parameter '{param}': {message}.", param=param,
                               code="invalid_value")


def dig(value: Any, *keys: str) -> Any:
    """value[k1][k2]... or None as soon as a level is not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576,
                    "xhigh": 24576}
# Gemini 2.5 Pro only works thinking: its smallest budget stands for "none".
PRO_MIN_BUDGET = 128
THINKING_LEVELS = {"none": "MINIMAL", "minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM",
                   "high": "HIGH", "xhigh": "HIGH"}


def thinking_config(body: dict[str, Any], model: str) -> dict | None:
    explicit = body.get("thinking")
    if isinstance(explicit, dict):
        if explicit.get("type") == "disabled":
            return {"thinkingBudget": 0}
        budget = explicit.get("budget_tokens")
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)):
            raise refuse("thinking.budget_tokens", "must be an integer")
        return {"includeThoughts": True, **({"thinkingBudget": budget} if budget else {})}
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in THINKING_BUDGETS:
        raise refuse("reasoning_effort", f"must be one of {', '.join(THINKING_BUDGETS)}")
    shown = {"includeThoughts": True} if effort != "none" else {}
    model = model.removeprefix("models/")
    if model.startswith("gemini-3"):
        return {**shown, "thinkingLevel": THINKING_LEVELS[effort]}
    budget = THINKING_BUDGETS[effort]
    if budget == 0 and model.startswith("gemini-2.5-pro"):
        budget = PRO_MIN_BUDGET
    return {**shown, "thinkingBudget": budget}


def wire_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    system, contents = conversation(body["messages"])
    wire: dict[str, Any] = {"contents": contents}
    if system:
        wire["systemInstruction"] = {"parts": system}
    config = {wire_name: VALUE_FORMS.get(name, _same)(body[name])
              for name, wire_name in GENERATION_PARAMS.items() if body.get(name) is not None}
    config.update(response_format(body.get("response_format")))
    thinking = thinking_config(body, model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        wire["generationConfig"] = config
    declarations = function_declarations(body)
    if declarations:
        wire["tools"] = [{"functionDeclarations": declarations}]
    if body.get("web_search_options") is not None:  # Google Search grounding
        wire.setdefault("tools", []).append({"googleSearch": {}})
    calling = function_calling(body, {d["name"] for d in declarations})
    if calling:
        wire["toolConfig"] = {"functionCallingConfig": calling}
    return wire


def _same(value: Any) -> Any:
    return value


# -- messages ------------------------------------------------------------------------
def conversation(messages: list[dict]) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents) with same-role neighbours merged into one turn."""
    system: list[dict] = []
    contents: list[dict] = []
    call_names: dict[str, str] = {}   # tool call id -> function name, from assistant turns
    for i, message in enumerate(messages):
        role = message["role"]
        if role in SYSTEM_ROLES:
            system += content_parts(message.get("content"), f"messages[{i}].content")
            continue
        if role == "assistant":
            parts = signed_text(message, content_parts(message.get("content"),
                                                       f"messages[{i}].content"))
            parts += assistant_calls(message, i, call_names)
        elif role == "tool":
            name = call_names.get(message.get("tool_call_id"))
            if name is None:
                raise refuse(f"messages[{i}].tool_call_id", "matches no tool call of an earlier "
                             "assistant message (Gemini needs the called function's name)")
            parts = [function_response(name, message.get("content"))]
        elif role == "function":
            if not isinstance(message.get("name"), str) or not message["name"]:
                raise refuse(f"messages[{i}].name", "a function message needs the function name")
            parts = [function_response(message["name"], message.get("content"))]
        else:
            parts = content_parts(message.get("content"), f"messages[{i}].content")
        if not parts:
            continue
        wire_role = TURN_ROLES[role]
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": wire_role, "parts": parts})
    if not contents and system:   # system text only: the same minimal turn Anthropic's path adds
        contents.append({"role": "user", "parts": [{"text": OPENING_TURN}]})
    if not contents:
        raise refuse("messages", "Gemini needs at least one non-empty user or assistant message")
    return system, contents


def content_parts(content: Any, where: str) -> list[dict]:
    """Gemini parts for an OpenAI content (string or parts); empty text is left out."""
    if isinstance(content, str) or content is None:
        return [{"text": content}] if content else []
    parts = []
    for j, part in enumerate(content):
        converted = content_part(part, f"{where}[{j}]")
        if converted is not None:
            parts.append(converted)
    return parts


def content_part(part: dict, where: str) -> dict | None:
    kind = part["type"]
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise refuse(f"{where}.{kind}", "must be a string")
        return {"text": text} if text else None
    if kind == "image_url":
        url = part.get("image_url")
        url = url if isinstance(url, str) else dig(url, "url")
        return image(url, f"{where}.image_url.url")
    if kind == "input_audio":
        data, fmt = dig(part, "input_audio", "data"), dig(part, "input_audio", "format")
        if not isinstance(data, str) or not isinstance(fmt, str) or not fmt:
            raise refuse(f"{where}.input_audio", "needs base64 `data` and a `format`")
        return {"inlineData": {"mimeType": f"audio/{fmt}", "data": data}}
    if kind == "file":
        data = dig(part, "file", "file_data")
        if not isinstance(data, str):
            raise refuse(f"{where}.file", "Gemini takes a file only as `file_data` (a data: "
                         "URL); uploaded file ids cannot be sent")
        return {"inlineData": data_url(data, f"{where}.file.file_data")}
    raise refuse(f"{where}.type", f"content part type {kind!r} is not supported by gemini")


def image(url: Any, where: str) -> dict:
    if not isinstance(url, str) or not url:
        raise refuse(where, "must be a data: URL or an http(s) URL")
    if url.startswith("data:"):
        return {"inlineData": data_url(url, where)}
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise refuse(where, "must be a data: URL or an http(s) URL")
    path = parts.path.lower()
    mime = next((t for ext, t in IMAGE_TYPES.items() if path.endswith(ext)), None)
    return {"fileData": {"fileUri": url, **({"mimeType": mime} if mime else {})}}


def data_url(url: str, where: str) -> dict:
    """`data:<mime>;base64,<data>` -> Blob {mimeType, data}."""
    head, comma, data = url.partition(",")
    mime = head[len("data:"):].split(";")[0]
    if not head.startswith("data:") or not comma or not head.endswith(";base64") or not mime:
        raise refuse(where, "a data: URL must look like data:<mime type>;base64,<data>")
    return {"mimeType": mime, "data": data}


def signed_text(message: dict, parts: list[dict]) -> list[dict]:
    """An answer's text parts with the thought signature Gemini gave the text back on the
    last text part, where Gemini put it (see response.py)."""
    signature = dig(message, "extra_content", "google", "thought_signature")
    texts = [p for p in parts if "text" in p]
    if isinstance(signature, str) and signature and texts:
        texts[-1]["thoughtSignature"] = signature
    return parts


# -- tool calls and results ------------------------------------------------------------
def assistant_calls(message: dict, i: int, call_names: dict[str, str]) -> list[dict]:
    """functionCall parts for an assistant's tool_calls (or legacy function_call)."""
    calls = [(f"messages[{i}].tool_calls[{j}].function", call, dig(call, "function"))
             for j, call in enumerate(message.get("tool_calls") or ())]
    if message.get("function_call") is not None:
        calls.append((f"messages[{i}].function_call", {}, message["function_call"]))
    parts = []
    for where, call, function in calls:
        name = dig(function, "name")
        if not isinstance(name, str) or not name:
            raise refuse(f"{where}.name", "is required")
        part: dict[str, Any] = {"functionCall": {
            "name": name, "args": arguments(dig(function, "arguments"), f"{where}.arguments")}}
        signature = dig(call, "extra_content", "google", "thought_signature")
        if isinstance(signature, str) and signature:
            part["thoughtSignature"] = signature
        if isinstance(call.get("id"), str):
            call_names[call["id"]] = name
        parts.append(part)
    return parts


def arguments(raw: Any, where: str) -> dict:
    """OpenAI's arguments JSON string -> the object Gemini's `args` wants."""
    if raw is None or raw == "":
        return {}
    try:
        value = loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise refuse(where, "must be a JSON object (as a string)") from None
    if not isinstance(value, dict):
        raise refuse(where, "must be a JSON object (as a string)")
    return value


def function_response(name: str, content: Any) -> dict:
    """A tool result as Gemini's response object: a JSON object as it is, else {"content": ...}."""
    text = message_text(content)
    try:
        value = loads(text)
    except ValueError:
        value = text
    return {"functionResponse": {"name": name, "response": value if isinstance(value, dict)
                                 else {"content": value}}}


def function_declarations(body: dict[str, Any]) -> list[dict]:
    """OpenAI tools and legacy functions; their JSON Schema goes as `parametersJsonSchema`."""
    declared = []
    for i, tool in enumerate(body.get("tools") or ()):
        if tool.get("type", "function") != "function":
            raise refuse(f"tools[{i}].type", f"tool type {tool.get('type')!r} is not supported "
                         "by gemini (only function tools)")
        declared.append((f"tools[{i}].function", tool["function"]))
    declared += [(f"functions[{i}]", f) for i, f in enumerate(body.get("functions") or ())]
    declarations = []
    for where, function in declared:
        declaration = {"name": function["name"]}
        for field, wire_name, kind in (("description", "description", str),
                                       ("parameters", "parametersJsonSchema", dict)):
            value = function.get(field)
            if value is not None and not isinstance(value, kind):
                raise refuse(f"{where}.{field}",
                             "must be a string" if kind is str else "must be an object")
            if value:
                declaration[wire_name] = value
        declarations.append(declaration)
    return declarations


def function_calling(body: dict[str, Any], declared: set[str]) -> dict | None:
    """tool_choice (or legacy function_call) -> functionCallingConfig."""
    param = "tool_choice" if body.get("tool_choice") is not None else "function_call"
    choice = body.get(param)
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"mode": CHOICE_MODES[choice]}
    name = dig(choice, "function", "name") if param == "tool_choice" else choice.get("name")
    if (param == "tool_choice" and choice.get("type") != "function") or not isinstance(name, str):
        raise refuse(param, "must be auto, none, required or a named function "
                     "({\"type\": \"function\", \"function\": {\"name\": ...}})")
    if name not in declared:
        raise refuse(param, f"names the function {name!r}, which is not among the tools")
    return {"mode": "ANY", "allowedFunctionNames": [name]}


def response_format(value: Any) -> dict:
    """response_format -> responseMimeType (+ responseJsonSchema for json_schema)."""
    kind = dig(value, "type")
    if value is None or kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = dig(value, "json_schema", "schema")
        if not isinstance(schema, dict):
            raise refuse("response_format.json_schema.schema", "must be an object")
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise refuse("response_format.type", "must be text, json_object or json_schema")
