"""OpenAI chat request -> Anthropic Messages request body.

Decisions (each is what a client of an OpenAI-style proxy expects from Claude):
- `temperature` is clamped to Anthropic's 0-1 range rather than scaled: a client that tuned
  0.7 for Claude gets 0.7, and "hotter than 1" gets Anthropic's hottest, 1.
- `top_p` only when it is below 1 and `temperature` is absent (`sampling_drops`): newer
  models refuse the two together.
- Every system/developer message, wherever it stands, goes into the top-level `system`,
  in order, one text block each.
- Messages with nothing in them are left out (the API refuses empty turns), consecutive
  same-role turns are merged, and a conversation that does not start with a user turn gets
  a minimal one first (`OPENING_TURN`), since the API wants user-first alternation.
- `file` parts (PDF data: URLs) become `document` blocks; tool results may hold images and
  documents as well as text, as `tool_result` content.
- Legacy `function_call` / `role: function` messages carry no ids, so ids are made from the
  position of the assistant message (`call_fn_<position>`), pairing each result with the
  function call before it.
- Tool-call ids are kept; characters the API's id pattern refuses become "_", the same way
  on the tool_use and tool_result side, so pairs still match.
- Stop sequences the API refuses (whitespace only, such as "\n") are not sent; the answer
  is cut at them here instead (`local_stops`, applied by response.py and stream.py), so
  `stop: ["\n"]` works as with OpenAI (the model may generate, and bill, past that point).
- Tool history (tool_use / tool_result) in a request without `tools` declares the tools it
  names with an open schema and `tool_choice: none` (`history_tools`).
- Reasoning: `reasoning_effort` becomes `thinking` with a budget (`THINKING_BUDGETS`, at
  least 1024 and below `max_tokens`, as the API wants); an explicit Anthropic `thinking`
  object is sent as it is, and with `{"type": "adaptive"}` the effort goes to
  `output_config.effort`. With thinking on, a `temperature` other than 1 or a `top_p` below
  0.95 is refused (the API does), and an assistant message's `thinking_blocks` (signed, as
  answers carry them) are sent back first in its turn.
- `response_format` json_schema -> `output_config.format` (structured outputs); text needs
  nothing; json_object has no equivalent and is reported by `unsupported_values`.
- Fields outside OpenAI's chat API are not sent (the Messages API refuses fields it does not
  know), except Anthropic's own `top_k`.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from app.errors import InvalidRequestError
from app.jsonfast import loads
from app.providers.base import Target, stop_list

DEFAULT_MAX_TOKENS = 4096
OPENING_TURN = "."
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_UNSAFE_ID = re.compile(r"[^a-zA-Z0-9_-]")

# Request field -> (Messages API field, conversion); None values are not sent.
PARAMS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "temperature": ("temperature", lambda t: min(t, 1)),
    "top_p": ("top_p", lambda p: p),
    "top_k": ("top_k", lambda k: k),
    "thinking": ("thinking", lambda thinking: thinking),
    "stop": ("stop_sequences", lambda stop: [s for s in stop_list(stop) if s.strip()] or None),
    "user": ("metadata", lambda user: {"user_id": user}),
    "stream": ("stream", bool),
}
TOOL_CHOICES = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}

# OpenAI params whose value here can be something Anthropic cannot honour: value -> honoured?
HONOURED_VALUES: dict[str, Callable[[Any], bool]] = {
    "response_format": lambda fmt: isinstance(fmt, dict) and fmt.get("type") in (
        "text", "json_schema"),
    "reasoning_effort": lambda effort: effort == "none" or effort in THINKING_BUDGETS,
}
# ... and while thinking is on (the API refuses sampling changes then).
HONOURED_WHILE_THINKING: dict[str, Callable[[Any], bool]] = {
    "temperature": lambda t: t == 1, "top_p": lambda p: p >= 0.95}
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192}
MIN_THINKING_BUDGET = 1024
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh"}


def unsupported_values(body: dict[str, Any]) -> list[str]:
    rules = {**HONOURED_VALUES, **(HONOURED_WHILE_THINKING if thinks(body) else {})}
    return [key for key, honoured in rules.items()
            if body.get(key) is not None and not honoured(body[key])]


def thinks(body: dict[str, Any]) -> bool:
    explicit = body.get("thinking")
    if isinstance(explicit, dict):
        return explicit.get("type") != "disabled"
    return body.get("reasoning_effort") not in (None, "none")


def sampling_drops(body: dict[str, Any]) -> list[str]:
    """Newer Claude models refuse `temperature` and `top_p` together, and OpenAI clients
    often send both (`top_p: 1`): `top_p` is sent only when it asks for something (< 1) and
    `temperature` is absent; otherwise it is dropped (and reported)."""
    top_p = body.get("top_p")
    if top_p is not None and (top_p >= 1 or body.get("temperature") is not None):
        return ["top_p"]
    return []


def local_stops(body: dict[str, Any]) -> list[str]:
    """Stop sequences the API refuses (whitespace only), applied to the answer by the proxy."""
    return [s for s in stop_list(body.get("stop")) or () if s and not s.strip()]


def wire_body(body: dict[str, Any], target: Target) -> dict[str, Any]:
    system, messages = conversation(body["messages"])
    wire: dict[str, Any] = {"model": target.upstream_model, "messages": messages,
                            "max_tokens": max_tokens(body, target)}
    if system:
        wire["system"] = system
    for key, (name, convert) in PARAMS.items():
        value = convert(body[key]) if body.get(key) is not None else None
        if value is not None:
            wire[name] = value
    tools = tool_definitions(body) + search_tools(body)
    if tools:
        wire["tools"] = tools
        choice = tool_choice(body)
        if choice:
            wire["tool_choice"] = choice
    elif history_tools(messages):
        wire["tools"] = history_tools(messages)
        wire["tool_choice"] = {"type": "none"}
    if "thinking" not in wire and thinks(body):
        wire["thinking"] = thinking_budget(body["reasoning_effort"], wire["max_tokens"])
    output = output_format(body.get("response_format"))
    if output:
        wire["output_config"] = {"format": output}
    if wire.get("thinking", {}).get("type") == "adaptive" and body.get("reasoning_effort") in EFFORTS:
        wire.setdefault("output_config", {})["effort"] = EFFORTS[body["reasoning_effort"]]
    return wire


def thinking_budget(effort: str, max_tokens: int) -> dict:
    """`thinking` for an effort: its budget, kept below max_tokens (which counts thinking, as
    OpenAI's max_completion_tokens counts reasoning) and never below the API's 1024."""
    budget = min(THINKING_BUDGETS[effort], max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        raise InvalidRequestError(
            f"reasoning_effort needs max_tokens above {MIN_THINKING_BUDGET} with Anthropic "
            f"(its thinking budget is at least {MIN_THINKING_BUDGET} tokens and counts "
            f"towards max_tokens); got max_tokens {max_tokens}", param="max_tokens",
            code="invalid_value")
    return {"type": "enabled", "budget_tokens": budget}


def max_tokens(body: dict[str, Any], target: Target) -> int:
    """Required by the API: the client's limit, else the model's output limit, else 4096."""
    for value in (body.get("max_completion_tokens"), body.get("max_tokens"),
                  target.info.get("max_output_tokens")):
        if value is not None:
            return value
    return DEFAULT_MAX_TOKENS


# -- messages ----------------------------------------------------------------------
def conversation(messages: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(system blocks, Anthropic messages) from OpenAI messages."""
    system: list[dict] = []
    turns: list[dict] = []
    function_call_id = None   # the legacy function_call awaiting its `role: function` result
    for position, message in enumerate(messages):
        where = f"messages[{position}]"
        role = message.get("role")
        if role in ("system", "developer"):
            system += content_blocks(message.get("content"), where, ("text",))
        elif role == "user":
            add_turn(turns, "user", content_blocks(message.get("content"), where, USER_PARTS))
        elif role == "assistant":
            blocks = thinking_blocks(message.get("thinking_blocks"), where)
            blocks += content_blocks(message.get("content"), where, ("text",))
            for index, call in enumerate(message.get("tool_calls") or ()):
                call_where = f"{where}.tool_calls[{index}]"
                if not isinstance(call, dict):
                    raise InvalidRequestError(f"{call_where} must be an object", param=call_where)
                blocks.append(tool_use(call.get("id"), call.get("function"), call_where))
            if message.get("function_call"):
                function_call_id = f"call_fn_{position}"
                blocks.append(tool_use(function_call_id, message["function_call"],
                                       f"{where}.function_call"))
            add_turn(turns, "assistant", blocks)
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id") if role == "tool" else function_call_id
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequestError(
                    f"{where} is a {role} result without the id of the call it answers "
                    f"({'tool_call_id' if role == 'tool' else 'no function_call before it'})",
                    param=f"{where}.tool_call_id")
            result = {"type": "tool_result", "tool_use_id": safe_id(call_id)}
            content = content_blocks(message.get("content"), where, USER_PARTS)
            if content:
                result["content"] = content
            add_turn(turns, "user", [result])
        else:
            raise InvalidRequestError(f"{where}.role {role!r} is not supported",
                                      param=f"{where}.role")
    return system, normalised(turns)


def thinking_blocks(blocks: Any, where: str) -> list[dict]:
    """An answer's signed thinking blocks, sent back as they came (the API checks them)."""
    if blocks is None:
        return []
    if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking")
            for b in blocks):
        raise InvalidRequestError(f"{where}.thinking_blocks must be a list of thinking or "
                                  f"redacted_thinking blocks, as answers carry them",
                                  param=f"{where}.thinking_blocks")
    return [dict(b) for b in blocks]


def add_turn(turns: list[dict], role: str, blocks: list[dict]) -> None:
    """Append a turn, merging it into the previous one when the role repeats."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"] += blocks
    else:
        turns.append({"role": role, "content": blocks})


def normalised(turns: list[dict]) -> list[dict]:
    """User first, and no trailing space in a final assistant turn (the API refuses it
    there, as it continues that text)."""
    if turns and turns[-1]["role"] == "assistant" and turns[-1]["content"][-1]["type"] == "text":
        last = turns[-1]["content"][-1]
        last["text"] = last["text"].rstrip()   # not blank: blank blocks are never made
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": OPENING_TURN}]})
    return turns


def content_blocks(content: Any, where: str, allowed: tuple[str, ...]) -> list[dict]:
    """Anthropic blocks from OpenAI content; blank text is dropped (the API refuses it)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of parts",
                                  param=f"{where}.content")
    blocks = []
    for index, part in enumerate(content):
        part_where = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            raise InvalidRequestError(
                f"{part_where}: content part type {kind!r} is not supported here by Anthropic "
                f"(supported: {', '.join(allowed)})", param=part_where)
        block = PART_BLOCKS[kind](part, part_where)
        if block is not None:
            if part.get("cache_control") is not None:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    return blocks


def text_block(part: dict, where: str) -> dict | None:
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}.text must be a string", param=f"{where}.text")
    return {"type": "text", "text": text} if text.strip() else None


def image_block(part: dict, where: str) -> dict:
    """data: URLs become base64 sources, http(s) URLs url sources."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    if isinstance(url, str) and url.startswith("data:"):
        header, comma, data = url[len("data:"):].partition(",")
        media_type, *options = header.split(";")
        media_type = "image/jpeg" if media_type == "image/jpg" else media_type  # common misspelling
        if comma and "base64" in options and media_type in IMAGE_TYPES:
            return {"type": "image",
                    "source": {"type": "base64", "media_type": media_type, "data": data}}
    raise InvalidRequestError(
        f"{where}.image_url.url must be an http(s) URL or a base64 data URL of type "
        f"{', '.join(IMAGE_TYPES)}", param=f"{where}.image_url")


def document_block(part: dict, where: str) -> dict:
    """A `file` part holding a PDF data: URL -> a document block (base64 source)."""
    data = part.get("file", {}).get("file_data") if isinstance(part.get("file"), dict) else None
    header, comma, encoded = data.partition(",") if isinstance(data, str) else ("", "", "")
    if header == "data:application/pdf;base64" and comma and encoded:
        return {"type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": encoded}}
    raise InvalidRequestError(
        f"{where}.file.file_data must be a base64 PDF data: URL "
        f"(data:application/pdf;base64,...); Anthropic cannot read uploaded file ids",
        param=f"{where}.file")


PART_BLOCKS: dict[str, Callable[[dict, str], dict | None]] = {
    "text": text_block, "image_url": image_block, "file": document_block}
USER_PARTS = ("text", "image_url", "file")   # user turns and tool results alike


def tool_use(call_id: Any, function: Any, where: str) -> dict:
    """A tool_use block; `arguments` (a JSON string in OpenAI) becomes the `input` object."""
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{where}.id is required", param=f"{where}.id")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}.function.name is required", param=f"{where}.function")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = loads(arguments) if isinstance(arguments, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequestError(
            f"{where}.function.arguments must be a string holding a JSON object "
            f"(Anthropic needs the call's input as an object), got {arguments!r:.80}",
            param=f"{where}.function.arguments")
    return {"type": "tool_use", "id": safe_id(call_id), "name": name, "input": parsed}


def safe_id(call_id: str) -> str:
    return _UNSAFE_ID.sub("_", call_id)


# -- tools -------------------------------------------------------------------------
def search_tools(body: dict[str, Any]) -> list[dict]:
    """`web_search_options` as Anthropic's web search server tool."""
    options = body.get("web_search_options")
    if options is None:
        return []
    tool = {"type": "web_search_20250305", "name": "web_search"}
    location = (options.get("user_location") or {}).get("approximate")
    if location:
        tool["user_location"] = {"type": "approximate", **location}
    return [tool]


def tool_definitions(body: dict[str, Any]) -> list[dict]:
    """`tools` (type function) and legacy `functions` -> Anthropic custom tools."""
    specs = [(f"tools[{i}]", tool.get("function") if isinstance(tool, dict) else None)
             for i, tool in enumerate(body.get("tools") or ())]
    specs += [(f"functions[{i}]", spec) for i, spec in enumerate(body.get("functions") or ())]
    tools = []
    for where, spec in specs:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequestError(f"{where} must be a function with a name", param=where)
        parameters = spec.get("parameters") or {"properties": {}}
        if not isinstance(parameters, dict):
            raise InvalidRequestError(f"{where}.parameters must be a JSON Schema object",
                                      param=where)
        tool = {"name": spec["name"], "input_schema": {"type": "object", **parameters}}
        if spec.get("description"):
            tool["description"] = spec["description"]
        if isinstance(spec.get("strict"), bool):
            tool["strict"] = spec["strict"]
        tools.append(tool)
    return tools


def history_tools(messages: list[dict]) -> list[dict]:
    """The tools a conversation's tool_use blocks name, declared with an open schema: the API
    refuses tool history without `tools`, which OpenAI accepts (the answer may not call them)."""
    names = dict.fromkeys(block["name"] for turn in messages for block in turn["content"]
                          if block["type"] == "tool_use")
    return [{"name": name, "input_schema": {"type": "object"}} for name in names]


def tool_choice(body: dict[str, Any]) -> dict | None:
    choice = body.get("tool_choice", body.get("function_call"))
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequestError(f"tool_choice {choice!r} is not one of "
                                      f"{', '.join(TOOL_CHOICES)}", param="tool_choice")
        wire = dict(TOOL_CHOICES[choice])
    elif isinstance(choice, dict):
        named = choice.get("function") if "function" in choice else choice
        name = named.get("name") if isinstance(named, dict) else None
        if not isinstance(name, str):
            raise InvalidRequestError("tool_choice must name a function", param="tool_choice")
        wire = {"type": "tool", "name": name}
    else:
        wire = None
    if body.get("parallel_tool_calls") is False:
        wire = wire or {"type": "auto"}
        if wire["type"] != "none":
            wire["disable_parallel_tool_use"] = True
    return wire


def output_format(response_format: Any) -> dict | None:
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequestError("response_format.json_schema.schema must be a JSON Schema object",
                                  param="response_format")
    return {"type": "json_schema", "schema": schema}
