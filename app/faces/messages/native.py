"""An answer Anthropic gave a passed-through request, served again from the cache.

The cache keeps it as it came: the Message body, or the stream's events. A hit gets it with
its own message id, in the form it asked for: a kept stream is replayed event by event (or
assembled into its Message, as the anthropic SDK accumulates one), a kept body is
re-streamed as Anthropic streams a Message (each block's start, its deltas, its stop), so
thinking signatures, citations, cache usage and block types the proxy does not know
survive either way.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from app.faces.messages.response import message_id
from app.jsonfast import dumps, loads
from app.providers.base import NativeEvent, completion_id
from app.service.passthrough import NativeAnswer

# message_delta's usage fields (MessageDeltaUsage): the final counts of the answer.
DELTA_USAGE = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
               "cache_read_input_tokens", "server_tool_use")
DELTA_FIELDS = ("stop_reason", "stop_sequence", "stop_details", "container")


def answer(kept: NativeAnswer) -> dict[str, Any]:
    body = kept.body if kept.body is not None else assembled(kept.events)
    return {**body, "id": message_id(completion_id())}


def events(kept: NativeAnswer) -> Iterator[NativeEvent]:
    identifier = message_id(completion_id())
    for event in kept.events if kept.events is not None else restreamed(kept.body):
        if event.event == "message_start":
            data = loads(event.data)
            data["message"]["id"] = identifier
            event = NativeEvent(event.event, dumps(data).decode())
        yield event


def assembled(stream: Iterable[NativeEvent]) -> dict[str, Any]:
    """The Message a stream of events adds up to."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict] = {}
    partial: dict[int, str] = {}   # a tool block's input, as JSON text so far
    for event in stream:
        data = loads(event.data)
        kind = data.get("type")
        if kind == "message_start":
            message = data["message"]
        elif kind == "content_block_start":
            blocks[data["index"]] = data["content_block"]
        elif kind == "content_block_delta":
            _apply(blocks[data["index"]], data["delta"], partial, data["index"])
        elif kind == "content_block_stop" and data["index"] in partial:
            text = partial.pop(data["index"])
            blocks[data["index"]]["input"] = loads(text) if text else {}
        elif kind == "message_delta":
            message.update(data.get("delta") or {})
            message["usage"] = {**message.get("usage", {}), **{
                k: v for k, v in (data.get("usage") or {}).items() if v is not None}}
    return {**message, "content": [blocks[i] for i in sorted(blocks)]}


def _apply(block: dict, delta: dict, partial: dict[int, str], index: int) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "input_json_delta":
        partial[index] = partial.get(index, "") + delta["partial_json"]
    elif kind == "citations_delta":
        block["citations"] = [*(block.get("citations") or ()), delta["citation"]]


def restreamed(message: dict[str, Any]) -> Iterator[NativeEvent]:
    """A Message as the events Anthropic streams it in."""
    usage = message.get("usage") or {}
    yield _event({"type": "message_start", "message": {
        **message, "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {**usage, "output_tokens": min(1, usage.get("output_tokens") or 0)}}})
    yield _event({"type": "ping"})
    for index, block in enumerate(message.get("content") or ()):
        start, deltas = _block_parts(block)
        yield _event({"type": "content_block_start", "index": index, "content_block": start})
        for delta in deltas:
            yield _event({"type": "content_block_delta", "index": index, "delta": delta})
        yield _event({"type": "content_block_stop", "index": index})
    yield _event({"type": "message_delta",
                  "delta": {k: message.get(k) for k in DELTA_FIELDS},
                  "usage": {k: usage.get(k) for k in DELTA_USAGE}})
    yield _event({"type": "message_stop"})


def _block_parts(block: dict) -> tuple[dict, list[dict]]:
    """A block's content_block_start and its deltas; a block type without deltas (a tool
    result, redacted thinking, one Anthropic adds later) starts whole."""
    kind = block.get("type")
    if kind == "text":
        citations = block.get("citations")
        deltas = [{"type": "citations_delta", "citation": c} for c in citations or ()]
        start = {**block, "text": "", "citations": [] if citations else citations}
        return start, deltas + [{"type": "text_delta", "text": block["text"]}]
    if kind == "thinking":
        return {**block, "thinking": "", "signature": ""}, [
            {"type": "thinking_delta", "thinking": block["thinking"]},
            {"type": "signature_delta", "signature": block.get("signature", "")}]
    if "input" in block and str(kind).endswith("tool_use"):  # also server_ and mcp_tool_use
        text = dumps(block["input"]).decode() if block["input"] else ""
        return {**block, "input": {}}, [{"type": "input_json_delta", "partial_json": text}]
    return block, []


def _event(data: dict) -> NativeEvent:
    return NativeEvent(data["type"], dumps(data).decode())
