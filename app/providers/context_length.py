"""Context-length errors in each provider's own wording, reported as OpenAI reports them:
400 `invalid_request_error` with code `context_length_exceeded`, which also sends the
request on to the model's `context_window_fallbacks`.

Each provider module names its wording (`Provider.context_length_wording`); the OpenAI
family's is the default, as every OpenAI-compatible server words it much alike.
"""
from __future__ import annotations

import re

from app.errors import ProxyError

CODE = "context_length_exceeded"

# OpenAI, Azure, vLLM, DeepSeek, Groq ("maximum context length is N tokens ... reduce the
# length of the messages"), OpenRouter ("This endpoint's maximum context length"), Mistral
# ("too large for model with N maximum context length"), TGI-based servers such as Together
# ("`inputs` tokens + `max_new_tokens` must be <= N"), llama.cpp / LM Studio ("exceeds the
# available context size"), Ollama ("input length exceeds the context length").
OPENAI_FAMILY = re.compile(
    r"maximum context length|context_length_exceeded|reduce the length of the messages|"
    r"too large for model with \d+ maximum context|must be <= \d+|"
    r"exceeds? the (available )?context (size|length|window)", re.IGNORECASE)
ANTHROPIC = re.compile(r"prompt is too long|input length and `max_tokens` exceed context limit",
                       re.IGNORECASE)
COHERE = re.compile(r"too many tokens|exceeds? the model's context (length|window)",
                    re.IGNORECASE)
GEMINI = re.compile(r"input token count.*exceeds the maximum|exceeds the maximum number of "
                    r"tokens allowed", re.IGNORECASE | re.DOTALL)
# Hugging Face TGI / the router: "`inputs` tokens + `max_new_tokens` must be <= 4096",
# "`inputs` must have less than 1024 tokens", and OpenAI-style wording from chat routes.
HUGGINGFACE = re.compile(OPENAI_FAMILY.pattern + r"|must have less than \d+ tokens",
                         re.IGNORECASE)


def marked(error: ProxyError, wording: re.Pattern) -> ProxyError:
    """`error` as OpenAI's context-length error when a 400-class failure says so."""
    if error.status in (400, 413) and error.code != CODE and wording.search(error.message):
        error.status, error.type, error.code = 400, "invalid_request_error", CODE
    return error
