"""Shared pieces of the Anthropic provider tests: the turns they send and scripted answers."""
from __future__ import annotations

from tests.emulators.anthropic import (CONTRACT, MESSAGE)
from tests.emulators.server import Reply


USER = [{"role": "user", "content": "ping"}]
HISTORY = [{"role": "user", "content": "weather in Oslo?"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "call_h1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
           {"role": "tool", "tool_call_id": "call_h1", "content": "cold"}]


def scripted(content: list[dict], stop_reason: str = "end_turn", **usage) -> Reply:
    """A 200 Message body as the API sends it; checked against the contract first."""
    body = {"id": "msg_scripted01", "type": "message", "role": "assistant", "content": content,
            "model": "claude-3-5-sonnet-20241022", "stop_reason": stop_reason,
            "stop_sequence": None, "stop_details": None, "container": None,
            "usage": {"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": None,
                      "cache_read_input_tokens": None, "cache_creation": None,
                      "inference_geo": None, "server_tool_use": None, "service_tier": "standard",
                      **usage}}
    assert CONTRACT.errors(MESSAGE, body) == []
    return Reply(200, body)
