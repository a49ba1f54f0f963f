"""Switchboard: one OpenAI-format endpoint in front of many LLM providers.

Library use, without the server:  `from app import completion, acompletion`.
"""
from app.library import acompletion, completion

__all__ = ["completion", "acompletion"]
