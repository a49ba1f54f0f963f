"""Anthropic Messages request -> the service's request (OpenAI chat params + proxy options),
for targets that do not speak the Messages API themselves.

Decisions:
- `system` (a string or text blocks) becomes one leading system message; a `role: system`
  turn (Anthropic's per-turn-control beta) a system message where it stands.
- A user turn's `tool_result` blocks become `role: tool` messages (ids kept), placed before
  the rest of that turn, as OpenAI wants results right after the assistant's calls.
- `image` blocks become `image_url` parts (base64 as a data: URL), PDF `document` blocks
  `file` parts, plain-text documents text parts.
- `thinking` / `redacted_thinking` blocks the client sends back, `cache_control` marks,
  `top_k`, `context_management` and the `thinking` / `output_config.effort` settings only
  steer how a Claude model works and have no OpenAI-format counterpart: they are left out
  (a translated model thinks, or not, its own way). What changes the answer itself is kept
  or refused: `output_config.format` becomes `response_format`; server tools (web search,
  code execution, ...) exist only on Anthropic and are refused with a 400 (dropped under
  `drop_params`).
- A refusal is not raised here: the same request may pass through to Anthropic untouched.
  `Translation.refusal` travels with the request, and an attempt that has to translate
  raises it (app/service/attempts.py).
- `stop_sequences` are applied by the face itself (so the answer can report which one
  stopped it, as `stop_sequence`), not sent upstream.
- `metadata.user_id` becomes `user`.
"""
from __future__ import annotations

from typing import Any

from app.errors import InvalidRequestError, UnsupportedParamsError
from app.jsonfast import dumps

# The proxy's own body fields (as on /chat/completions); never sent upstream. Not `metadata`,
# which is Anthropic's own field here.
PROXY_FIELDS = ("fallbacks", "cache", "drop_params", "num_retries", "timeout",
                "context_window_fallbacks", "mock_response")
SAMPLING = ("temperature", "top_p")
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def proxy_options(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in PROXY_FIELDS if key in body}


def native_body(body: dict[str, Any]) -> dict[str, Any]:
    """The client's body minus the proxy's own fields: what a Messages API receives."""
    return {key: value for key, value in body.items() if key not in PROXY_FIELDS}


class Translation:
    """The first thing a translated request cannot carry (None: everything can)."""

    def __init__(self):
        self.refusal: InvalidRequestError | None = None

    def refuse(self, error: InvalidRequestError) -> None:
        self.refusal = self.refusal or error


def chat_params(body: dict[str, Any], translation: Translation) -> dict[str, Any]:
    """The OpenAI chat request a Messages request amounts to (plus the proxy's options)."""
    params: dict[str, Any] = {"model": body["model"], "max_tokens": body["max_tokens"],
                              "messages": [*system_messages(body.get("system")),
                                           *conversation(body["messages"], translation)]}
    for key in SAMPLING:
        if body.get(key) is not None:
            params[key] = body[key]
    if body.get("stream"):
        params["stream"] = True
        params["stream_options"] = {"include_usage": True}
    tools = function_tools(body.get("tools") or (), translation)
    if tools:
        params["tools"] = tools
        choice = body.get("tool_choice")
        if choice:
            params.update(tool_choice(choice))
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        params["user"] = user
    output_format = (body.get("output_config") or {}).get("format")
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "output", "schema": output_format.get("schema") or {}, "strict": True}}
    return {**params, **proxy_options(body)}


def system_messages(system: Any) -> list[dict]:
    text = system if isinstance(system, str) else "\n\n".join(
        block.get("text", "") for block in system or () if block.get("type") == "text")
    return [{"role": "system", "content": text}] if text else []


def conversation(messages: list[dict], translation: Translation) -> list[dict]:
    out: list[dict] = []
    for position, message in enumerate(messages):
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        where = f"messages[{position}]"
        if message["role"] == "assistant":
            out.append(assistant_message(blocks))
        elif message["role"] == "system":  # a mid-conversation system turn (per-turn beta)
            out += system_messages(blocks)
        else:
            out += user_messages(blocks, where, translation)
    return out


def assistant_message(blocks: list[dict]) -> dict:
    text = "".join(b.get("text", "") for b in blocks if b["type"] == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": dumps(b.get("input") or {}).decode()}}
             for b in blocks if b["type"] == "tool_use"]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def user_messages(blocks: list[dict], where: str, translation: Translation) -> list[dict]:
    results = [{"role": "tool", "tool_call_id": b["tool_use_id"], "content": result_text(b)}
               for b in blocks if b["type"] == "tool_result"]
    parts = [part for i, b in enumerate(blocks) if b["type"] != "tool_result"
             for part in user_part(b, f"{where}.content[{i}]", translation)]
    if parts:
        results.append({"role": "user", "content": parts})
    return results


def result_text(block: dict) -> str:
    content = block.get("content")
    if isinstance(content, list):
        text = "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
    else:
        text = content or ""
    return f"Error: {text}" if block.get("is_error") else text


def user_part(block: dict, where: str, translation: Translation) -> list[dict]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": block["text"]}]
    if kind in ("thinking", "redacted_thinking"):
        return []
    source = block.get("source") or {}
    if kind == "document" and source.get("type") == "text":
        return [{"type": "text", "text": source.get("data", "")}]
    if kind in ("image", "document") and source.get("type") in ("base64", "url"):
        url = source.get("url") if source["type"] == "url" else (
            f"data:{source.get('media_type')};base64,{source.get('data')}")
        if kind == "image":
            return [{"type": "image_url", "image_url": {"url": url}}]
        return [{"type": "file", "file": {"filename": block.get("title") or "document.pdf",
                                          "file_data": url}}]
    what = f"a {kind!r} block" + (f" with a {source.get('type')!r} source" if source else "")
    translation.refuse(InvalidRequestError(
        f"{where}: {what} can only be sent to an Anthropic model", param=f"{where}.type"))
    return []


def function_tools(tools, translation: Translation) -> list[dict]:
    functions = []
    for index, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):  # left out; refused unless drop_params
            translation.refuse(UnsupportedParamsError(
                f"tools[{index}]: the server tool {tool.get('type')!r} runs only on "
                "Anthropic; remove it, or set drop_params: true to drop it for other models.",
                param=f"tools[{index}]"))
            continue
        function = {"name": tool["name"], "parameters": tool.get("input_schema") or {
            "type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        functions.append({"type": "function", "function": function})
    return functions


def tool_choice(choice: dict) -> dict[str, Any]:
    kind = choice.get("type")
    chosen: dict[str, Any] = {"tool_choice": {"type": "function", "function": {
        "name": choice.get("name")}} if kind == "tool" else TOOL_CHOICES[kind]}
    if choice.get("disable_parallel_tool_use"):
        chosen["parallel_tool_calls"] = False
    return chosen
