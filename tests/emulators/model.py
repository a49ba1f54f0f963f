"""A tiny deterministic 'model' every emulator answers with, so tests can predict replies.

Rules: after a tool result it reports the result; it calls a tool when the tool choice
forces one or the last user text names a tool; otherwise it answers
"Hello! You said: <last user text>". One word is one token; `max_tokens` cuts words
(finish "length"); a stop sequence cuts the text (finish "stop").
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field


@dataclass
class Turn:
    role: str                      # system, user, assistant, tool
    text: str = ""
    tool_calls: list[dict] = field(default_factory=list)   # [{id, name, arguments(dict)}]
    tool_call_id: str | None = None


@dataclass
class Tool:
    name: str
    parameters: dict


@dataclass
class Generation:
    text: str
    finish: str                    # stop, length, tool_calls
    prompt_tokens: int
    completion_tokens: int
    tool_call: dict | None = None  # {id, name, arguments(dict)}
    stopped_by: str | None = None


def count_words(text: str) -> int:
    return len(text.split())


def count_prompt(turns: list[Turn]) -> int:
    """A prompt's tokens: its words, plus one per turn."""
    return sum(count_words(t.text) for t in turns) + len(turns)


def generate(turns: list[Turn], tools: list[Tool] = (), tool_choice: str | None = None,
             max_tokens: int | None = None, stop: list[str] | None = None,
             call_number: int = 1) -> Generation:
    """tool_choice: None/'auto', 'none', 'required' (any tool), or a tool name."""
    prompt_tokens = count_prompt(turns)
    last_user = next((t.text for t in reversed(turns) if t.role == "user"), "")
    if turns and turns[-1].role == "tool":
        return _text(f"The tool returned: {turns[-1].text}", prompt_tokens, max_tokens, stop)
    tool = _chosen_tool(tools, tool_choice, last_user)
    if tool is not None:
        arguments = {name: "Paris" for name in tool.parameters.get("required", [])}
        call = {"id": f"call_{call_number:04d}abc", "name": tool.name, "arguments": arguments}
        return Generation("", "tool_calls", prompt_tokens, 1 + count_words(json.dumps(arguments)),
                          tool_call=call)
    return _text(f"Hello! You said: {last_user}", prompt_tokens, max_tokens, stop)


def complete_text(prompt: str, suffix: str | None = None, max_tokens: int | None = None,
                  stop: list[str] | None = None) -> Generation:
    """A text completion: " and so on" after the prompt's last word; with a suffix (fill in
    the middle), the gap between prompt and suffix named. Default max_tokens 16, as OpenAI's."""
    last = prompt.split()[-1] if prompt.split() else ""
    text = f" [middle of {last} and {suffix.split()[0] if suffix.split() else ''}]" if suffix \
        else f" {last} and so on"
    limit = 16 if max_tokens is None else max_tokens
    return _text(text, count_words(prompt) + count_words(suffix or ""), limit, stop)


def embed_text(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for a text: the same text always gets the same vector."""
    values, counter = [], 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in digest)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _chosen_tool(tools, tool_choice, last_user) -> Tool | None:
    if not tools or tool_choice == "none":
        return None
    if tool_choice not in (None, "auto", "required"):
        return next((t for t in tools if t.name == tool_choice), None)
    if tool_choice == "required":
        return tools[0]
    return next((t for t in tools if t.name in last_user), None)


def _text(text: str, prompt_tokens: int, max_tokens: int | None,
          stop: list[str] | None) -> Generation:
    stopped_by = None
    for sequence in stop or ():
        at = text.find(sequence)
        if at >= 0:
            text, stopped_by = text[:at], sequence
    words = text.split(" ")
    if max_tokens is not None and len(words) > max_tokens:
        return Generation(" ".join(words[:max_tokens]), "length", prompt_tokens, max_tokens)
    return Generation(text, "stop", prompt_tokens, count_words(text), stopped_by=stopped_by)


def stream_pieces(text: str) -> list[str]:
    """The text split into word pieces that join back to exactly the text."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] if text else []
