"""Switchboard: one OpenAI-format endpoint in front of many LLM providers.

Library use, without the server:  `from app import completion`.
"""
from app.service import completion

__all__ = ["completion"]
