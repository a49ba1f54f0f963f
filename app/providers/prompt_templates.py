"""Chat messages -> one prompt string, in the chat format a model family was tuned on.

Text-generation endpoints (Replicate's LLMs, Hugging Face text-generation models) take a
single prompt, and a model only follows a conversation written in its own format.
`render(template, messages)` returns `(prompt, None)`; with `system_in_prompt=False` it
returns `(prompt_without_system_block, system_text_or_None)` for models that take the
system text as an input of its own.

Shared normalisation, so that every format sees the same conversation:
- all system/developer messages, wherever they stand, join one system text in order
  (these formats have a single system slot);
- tool results and assistant tool calls become plain text (these models have no tool
  format; a conversation that used tools elsewhere still reads in order);
- consecutive turns of one role merge; text is trimmed, as the families' reference
  templates do;
- a conversation ending with an assistant message leaves it open: the model continues it.
"""
from __future__ import annotations

from typing import Any, Callable

from app.errors import InvalidRequestError

Turns = list[tuple[str, str]]   # (role, text), role "user" or "assistant", alternating


def _text(message: dict, position: int) -> str:
    """Plain text of a message; these models read text only, so other parts are refused."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return (content or "").strip()
    texts = []
    for part in content:
        if part.get("type") != "text":
            raise InvalidRequestError(
                f"messages[{position}] has a {part.get('type')!r} content part; this model "
                f"takes text only", param=f"messages[{position}].content",
                code="unsupported_content")
        texts.append(part.get("text") or "")
    return "".join(texts).strip()


def _call_text(call: dict) -> str:
    function = call.get("function") or {}
    return (f"[tool call {call.get('id', '')}: {function.get('name', '')}"
            f"({function.get('arguments') or ''})]")


def conversation(messages: list[dict]) -> tuple[str, Turns]:
    """(system text, alternating user/assistant turns) after the normalisation above."""
    system: list[str] = []
    turns: Turns = []
    for position, message in enumerate(messages):
        role, text = message.get("role"), _text(message, position)
        if role in ("system", "developer"):
            if text:
                system.append(text)
            continue
        if role in ("tool", "function"):
            source = message.get("tool_call_id") or message.get("name") or "tool"
            role, text = "user", f"[tool result {source}: {text}]"
        elif role == "assistant":
            calls = [_call_text(c) for c in message.get("tool_calls") or ()]
            if message.get("function_call"):
                calls.append(_call_text({"function": message["function_call"]}))
            text = "\n".join(t for t in (text, *calls) if t)
        else:
            role = "user"
        if turns and turns[-1][0] == role:
            turns[-1] = (role, "\n\n".join(t for t in (turns[-1][1], text) if t))
        else:
            turns.append((role, text))
    return "\n\n".join(system), turns


def _exchanges(turns: Turns) -> list[tuple[str, str | None]]:
    """(user, reply or None) pairs; a leading assistant turn gets an empty user turn."""
    pairs: list[tuple[str, str | None]] = []
    for role, text in turns:
        if role == "user":
            pairs.append((text, None))
        elif pairs and pairs[-1][1] is None:
            pairs[-1] = (pairs[-1][0], text)
        else:
            pairs.append(("", text))
    return pairs or [("", None)]


def llama2(system: str, turns: Turns) -> str:
    """`<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {reply} </s><s>[INST] ...`"""
    pairs = _exchanges(turns)
    parts = []
    for i, (user, reply) in enumerate(pairs):
        head = f"<<SYS>>\n{system}\n<</SYS>>\n\n" if i == 0 and system else ""
        parts.append(f"<s>[INST] {head}{user} [/INST]")
        if reply is not None:
            parts.append(f" {reply} </s>" if i < len(pairs) - 1 else f" {reply}")
    return "".join(parts)


def llama3(system: str, turns: Turns) -> str:
    """Header format; ends with an open assistant header (or the open assistant text)."""
    blocks = [("system", system)] if system else []
    blocks += turns
    parts = ["<|begin_of_text|>"]
    for i, (role, text) in enumerate(blocks):
        open_reply = role == "assistant" and i == len(blocks) - 1
        parts.append(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}"
                     + ("" if open_reply else "<|eot_id|>"))
    if not blocks or blocks[-1][0] != "assistant":
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


def mistral(system: str, turns: Turns) -> str:
    """`<s>[INST] {user} [/INST] {reply}</s>[INST] ...`; no system slot, so the system text
    opens the first instruction."""
    pairs = _exchanges(turns)
    parts = ["<s>"]
    for i, (user, reply) in enumerate(pairs):
        if i == 0 and system:
            user = f"{system}\n\n{user}" if user else system
        parts.append(f"[INST] {user} [/INST]")
        if reply is not None:
            parts.append(f" {reply}</s>" if i < len(pairs) - 1 else f" {reply}")
    return "".join(parts)


def plain(system: str, turns: Turns) -> str:
    """`System: ...\\nUser: ...\\nAssistant:` for models with no chat format of their own."""
    lines = [f"System: {system}"] if system else []
    lines += [f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in turns]
    if not turns or turns[-1][0] != "assistant":
        lines.append("Assistant:")
    return "\n".join(lines)


TEMPLATES: dict[str, Callable[[str, Turns], str]] = {
    "llama2": llama2, "llama3": llama3, "mistral": mistral, "plain": plain}


def render(template: str, messages: list[dict[str, Any]],
           system_in_prompt: bool = True) -> tuple[str, str | None]:
    """(prompt, system text given apart or None); `template` is a TEMPLATES key."""
    system, turns = conversation(messages)
    if system_in_prompt:
        return TEMPLATES[template](system, turns), None
    return TEMPLATES[template]("", turns), system or None
