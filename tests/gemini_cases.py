"""Shared pieces of the Gemini provider tests: the model, a turn and a tool."""
from __future__ import annotations



FLASH = "gemini/gemini-2.5-flash"
USER = [{"role": "user", "content": "hi"}]
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {}}}}
