"""The service's chat chunks as the Responses-API event stream.

Events come in OpenAI's order and shape, numbered by `sequence_number` from 0:
`response.created`, `response.in_progress`, then per output item `output_item.added`,
its content events (summary text, output text, or function-call arguments) and
`output_item.done`, and last `response.completed` (or `response.incomplete`) carrying the
whole response, whose items have the same ids the events named. A failure mid-stream
ends with `response.failed`.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from app.errors import ProxyError
from app.faces.responses.answer import (call_extras, call_item, finished, item_id,
                                        message_item, reasoning_item, shell, status_of,
                                        wants_encrypted)
from app.faces.responses.request import ToolNames
from app.service.completion import as_proxy_error

log = logging.getLogger("switchboard")


class EventStream:
    """One response's events; `response` is the final response once the stream has ended."""

    def __init__(self, body: dict[str, Any], names: ToolNames, identifier: str):
        self.body = body
        self.names = names
        self.response = shell(body, identifier, int(time.time()), body["model"])
        self.output: list[dict] = []
        self._sequence = 0
        self._open: dict | None = None     # the item being streamed: kind, id, what it holds
        self._calls: dict[int, dict] = {}  # chat tool-call index -> its open item state
        self._summary = bool((body.get("reasoning") or {}).get("summary"))

    def events(self, chunks) -> Iterator[dict]:
        yield self._event("response.created", response=self.response)
        yield self._event("response.in_progress", response=self.response)
        usage, finish_reason = None, None
        try:
            for chunk in chunks:
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    yield from self._delta(choice.get("delta") or {})
                    finish_reason = choice.get("finish_reason") or finish_reason
            yield from self._close(status_of(finish_reason)[0])
            yield from self._call_extras()
        except Exception as exc:  # after the first byte: the stream ends as a failed response
            if not isinstance(exc, ProxyError):
                log.exception("stream failed")
            error = as_proxy_error(exc)
            yield from self._close()
            self.response = {**self.response, "status": "failed", "output": self.output,
                             "error": {"code": error.code or "server_error",
                                       "message": error.message}}
            yield self._event("response.failed", response=self.response)
            return
        usage = {k: v for k, v in (usage or {}).items() if k != "cost"}
        self.response = finished(self.response, self.output, finish_reason, usage)
        final = "response.incomplete" if status_of(finish_reason)[0] == "incomplete" \
            else "response.completed"
        yield self._event(final, response=self.response)

    def _event(self, kind: str, **fields) -> dict:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _delta(self, delta: dict) -> Iterator[dict]:
        if delta.get("reasoning_content") or delta.get("thinking_blocks"):
            yield from self._reasoning(delta.get("reasoning_content") or "",
                                       delta.get("thinking_blocks") or [])
        if delta.get("content") or delta.get("refusal"):
            yield from self._text(delta.get("content") or "", delta.get("refusal") or "")
        for call in delta.get("tool_calls") or ():
            yield from self._call(call)

    # -- reasoning ------------------------------------------------------------------
    def _reasoning(self, text: str, blocks: list[dict]) -> Iterator[dict]:
        state = self._open
        if state is None or state["kind"] != "reasoning":
            yield from self._close()
            state = self._open = {"kind": "reasoning", "id": item_id("rs"), "text": "",
                                  "blocks": [], "index": len(self.output)}
            yield self._event("response.output_item.added", output_index=state["index"],
                              item={"id": state["id"], "type": "reasoning", "summary": []})
            if self._summary:
                yield self._event("response.reasoning_summary_part.added",
                                  **self._summary_place(state),
                                  part={"type": "summary_text", "text": ""})
        state["blocks"].extend(blocks)
        if text:
            state["text"] += text
            if self._summary:
                yield self._event("response.reasoning_summary_text.delta",
                                  **self._summary_place(state), delta=text)

    @staticmethod
    def _summary_place(state: dict) -> dict:
        return {"item_id": state["id"], "output_index": state["index"], "summary_index": 0}

    # -- text -----------------------------------------------------------------------
    def _text(self, text: str, refusal: str) -> Iterator[dict]:
        state = self._open
        if state is None or state["kind"] != "message":
            yield from self._close()
            state = self._open = {"kind": "message", "id": item_id("msg"), "text": "",
                                  "refusal": "", "index": len(self.output)}
            yield self._event("response.output_item.added", output_index=state["index"],
                              item={"id": state["id"], "type": "message", "role": "assistant",
                                    "status": "in_progress", "content": []})
            yield self._event("response.content_part.added", **self._text_place(state),
                              part={"type": "output_text", "text": "", "annotations": [],
                                    "logprobs": []})
        state["refusal"] += refusal
        if text:
            state["text"] += text
            yield self._event("response.output_text.delta", **self._text_place(state),
                              delta=text, logprobs=[])

    @staticmethod
    def _text_place(state: dict) -> dict:
        return {"item_id": state["id"], "output_index": state["index"], "content_index": 0}

    # -- function calls -------------------------------------------------------------
    def _call(self, fragment: dict) -> Iterator[dict]:
        position = fragment.get("index", 0)
        state = self._calls.get(position)
        function = fragment.get("function") or {}
        if state is None:
            yield from self._close()
            state = self._open = self._calls[position] = {
                "kind": "function_call", "id": item_id("fc"), "index": len(self.output),
                "call": {"id": fragment.get("id"), "type": "function",
                         "function": {"name": function.get("name") or "", "arguments": ""}}}
            if fragment.get("extra_content"):
                state["call"]["extra_content"] = fragment["extra_content"]
            item = call_item(state["id"], state["call"], self.names, "in_progress")
            yield self._event("response.output_item.added", output_index=state["index"],
                              item=item)
        arguments = function.get("arguments") or ""
        if arguments:
            state["call"]["function"]["arguments"] += arguments
            yield self._event("response.function_call_arguments.delta", item_id=state["id"],
                              output_index=state["index"], delta=arguments)

    def _call_extras(self) -> Iterator[dict]:
        """Tool calls' provider extras (Gemini's thought signatures) for the next turn, in a
        reasoning item of their own (they arrive with the calls, after any reasoning)."""
        extras = call_extras([state["call"] for state in self._calls.values()])
        if not extras or not wants_encrypted(self.body):
            return
        item = reasoning_item(item_id("rs"), "", [], self.body, extras)
        index = len(self.output)
        yield self._event("response.output_item.added", output_index=index,
                          item={"id": item["id"], "type": "reasoning", "summary": []})
        self.output.append(item)
        yield self._event("response.output_item.done", output_index=index, item=item)

    # -- closing an item ------------------------------------------------------------
    def _close(self, status: str = "completed") -> Iterator[dict]:
        """End the open item; the last one takes the response's status (`incomplete` when the
        model was cut off)."""
        state, self._open = self._open, None
        if state is None:
            return
        kind = state["kind"]
        if kind == "reasoning":
            item = reasoning_item(state["id"], state["text"], state["blocks"], self.body)
            if self._summary:
                place = self._summary_place(state)
                yield self._event("response.reasoning_summary_text.done", **place,
                                  text=state["text"])
                yield self._event("response.reasoning_summary_part.done", **place,
                                  part={"type": "summary_text", "text": state["text"]})
        elif kind == "message":
            item = message_item(state["id"], state["text"], state["refusal"] or None, status)
            place = self._text_place(state)
            yield self._event("response.output_text.done", **place, text=state["text"],
                              logprobs=[])
            yield self._event("response.content_part.done", **place, part=item["content"][0])
        else:
            item = call_item(state["id"], state["call"], self.names)
            yield self._event("response.function_call_arguments.done", item_id=state["id"],
                              output_index=state["index"], name=item["name"],
                              arguments=item["arguments"])
        self.output.append(item)
        yield self._event("response.output_item.done", output_index=state["index"], item=item)
