"""Token counting with tiktoken, offline, following OpenAI's rules for chat messages.

Used where a provider reports no usage, for context-window checks before a call, and
for /utils/token_counter. Non-OpenAI models are counted with cl100k_base as an estimate.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import tiktoken

from app.jsonfast import dumps

ENCODINGS_DIR = Path(__file__).with_name("encodings")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_load_lock = threading.Lock()

# OpenAI's chat format costs: every message is wrapped in 3 tokens, a name adds 1, and
# the reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# Message texts whose token counts a process keeps (at most CACHED_TEXTS x CACHED_TEXT_CHARS
# characters referenced: 8 MB).
CACHED_TEXTS = 1024
CACHED_TEXT_CHARS = 8192


@lru_cache(maxsize=None)
def encoding(name: str) -> tiktoken.Encoding:
    """Load an encoding from the files shipped in ENCODINGS_DIR (tiktoken's cache layout)."""
    with _load_lock:
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(ENCODINGS_DIR)
        try:
            return tiktoken.get_encoding(name)
        finally:
            if previous is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


def encoding_for(model: str) -> tiktoken.Encoding:
    bare = model.rsplit("/", 1)[-1]
    return encoding("o200k_base" if bare.startswith(_O200K_PREFIXES) else "cl100k_base")


def load_encodings() -> None:
    """Load every encoding now. A served proxy does this before it forks its workers: loaded
    on first use instead, each worker's first count held all its requests for 0.3-0.9 s
    (under gevent, one thread for all of them) and kept a private copy of the tables."""
    for name in ("cl100k_base", "o200k_base"):
        encoding(name)


def count_text(model: str, text: str) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=())) if text else 0


def count_input(model: str, item: str | list[int]) -> int:
    """Tokens of one embedding input or prompt: a text, or token ids already."""
    return count_text(model, item) if isinstance(item, str) else len(item)


def count_inputs(model: str, given: Any) -> int:
    """Tokens of OpenAI's `input` / `prompt`: a text, texts, token ids or token-id lists."""
    if not given:
        return 0
    if isinstance(given, str) or all(isinstance(item, int) for item in given):
        return count_input(model, given)
    return sum(count_input(model, item) for item in given)


def _content_text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(p["text"] for p in content
                   if isinstance(p, dict) and isinstance(p.get("text"), str))


@lru_cache(maxsize=64)
def _role_tokens(encoding_name: str, role: str) -> int:
    """Tokens of a message's role: the same few words in every message of every request."""
    return len(encoding(encoding_name).encode(role, disallowed_special=()))


@lru_cache(maxsize=CACHED_TEXTS)
def _cached_tokens(encoding_name: str, text: str) -> int:
    return len(encoding(encoding_name).encode(text, disallowed_special=()))


def _content_tokens(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens of a message's text. A keyed request counts its prompt before every call, and
    clients resend the same texts (a system prompt, a conversation's earlier turns): a text
    of at most CACHED_TEXT_CHARS is counted once per process. Each count also releases the
    GIL, which under load costs a wait for it to come back."""
    if len(text) > CACHED_TEXT_CHARS:
        return len(enc.encode(text, disallowed_special=()))
    return _cached_tokens(enc.name, text)


def count_messages(model: str, messages: Iterable[dict], tools: list | None = None,
                   functions: list | None = None) -> int:
    """Prompt tokens of a chat request as OpenAI bills them (tool definitions estimated)."""
    enc = encoding_for(model)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += _role_tokens(enc.name, message.get("role", ""))
        total += _content_tokens(enc, _content_text(message.get("content")))
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode(message["name"], disallowed_special=()))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            total += len(enc.encode(f"{function.get('name', '')}{function.get('arguments', '')}",
                                    disallowed_special=()))
        if message.get("function_call"):
            total += len(enc.encode(dumps(message["function_call"]).decode(),
                                    disallowed_special=()))
    definitions = [*(tools or ()), *(functions or ())]
    if definitions:
        total += len(enc.encode(dumps(definitions).decode(), disallowed_special=()))
    return total


def completion_text(response: dict) -> str:
    """Everything the model wrote in a chat.completion: text and tool-call arguments."""
    parts = []
    for choice in response.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(_content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append(f"{function.get('name', '')}{function.get('arguments', '')}")
    return "".join(parts)


def estimate_usage(model: str, params: dict, response: dict) -> tuple[dict, bool]:
    """The response's usage with every count the provider did not report (None, or no usage
    at all) counted here; the flag says whether anything was counted."""
    usage = dict(response.get("usage") or {})
    if not usage.get("prompt_tokens") and not usage.get("completion_tokens"):
        usage["prompt_tokens"] = usage["completion_tokens"] = None  # all zeros: none reported
    estimated = False
    if usage.get("prompt_tokens") is None:
        usage["prompt_tokens"] = count_messages(model, params.get("messages") or (),
                                                params.get("tools"), params.get("functions"))
        estimated = True
    if usage.get("completion_tokens") is None:
        usage["completion_tokens"] = count_text(model, completion_text(response))
        estimated = True
    if estimated or usage.get("total_tokens") is None:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    count_reasoning(model, response, usage)
    return usage, estimated


def count_reasoning(model: str, response: dict, usage: dict) -> None:
    """Reasoning tokens where the provider returns the reasoning but does not count it apart
    (Anthropic's and Cohere's output counts include their thinking): counted from the text,
    within the completion count."""
    details = usage.get("completion_tokens_details") or {}
    reasoning = "".join((choice.get("message") or {}).get("reasoning_content") or ""
                        for choice in response.get("choices") or ())
    if reasoning and details.get("reasoning_tokens") is None:
        usage["completion_tokens_details"] = {**details, "reasoning_tokens": min(
            count_text(model, reasoning), usage["completion_tokens"])}
