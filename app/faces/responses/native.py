"""A response OpenAI gave a passed-through request, served again from the cache.

The cache keeps it as it came: the response object, or the stream's events. A hit gets it
under the face's own new response id (so the store keeps it apart from the first one), in
the form it asked for: a kept stream is replayed event by event (or answered with the
response its final event carries), a kept response is re-streamed as OpenAI streams one
(each output item added, its content's deltas and done events, the item done), so
reasoning items, annotations and built-in tool items survive either way.
"""
from __future__ import annotations

from itertools import count
from typing import Any, Iterator

from app.jsonfast import dumps, loads
from app.providers.base import NativeEvent
from app.service.passthrough import NativeAnswer

FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
# Events that carry the response object (its id is the one a hit renews).
WHOLE_EVENTS = ("response.created", "response.queued", "response.in_progress", *FINAL_EVENTS)


def answer(kept: NativeAnswer, identifier: str) -> dict[str, Any]:
    body = kept.body if kept.body is not None else final_response(kept.events)
    return {**body, "id": identifier}


def events(kept: NativeAnswer, identifier: str) -> Iterator[NativeEvent]:
    for event in kept.events if kept.events is not None else restreamed(kept.body):
        if event.event in WHOLE_EVENTS:
            data = loads(event.data)
            data["response"]["id"] = identifier
            event = NativeEvent(event.event, dumps(data).decode())
        yield event


def final_response(stream: list[NativeEvent]) -> dict[str, Any]:
    """The whole response, as the stream's last event carries it."""
    last = next(e for e in reversed(stream) if e.event in FINAL_EVENTS)
    return loads(last.data)["response"]


def restreamed(response: dict[str, Any]) -> Iterator[NativeEvent]:
    """A response as the events OpenAI streams it in, numbered from 0."""
    number = count()

    def event(kind: str, **fields) -> NativeEvent:
        return NativeEvent(kind, dumps({"type": kind, "sequence_number": next(number),
                                        **fields}).decode())

    started = {**response, "status": "in_progress", "output": [], "completed_at": None,
               "incomplete_details": None, "error": None}
    started.pop("usage", None)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for index, item in enumerate(response.get("output") or ()):
        added, parts = _item_parts(item, index)
        yield event("response.output_item.added", output_index=index, item=added)
        for kind, fields in parts:
            yield event(kind, **fields)
        yield event("response.output_item.done", output_index=index, item=item)
    status = response.get("status")
    final = f"response.{status}" if f"response.{status}" in FINAL_EVENTS else \
        "response.completed"
    yield event(final, response=response)


def _item_parts(item: dict, index: int) -> tuple[dict, list[tuple[str, dict]]]:
    """An output item as output_item.added shows it (nothing generated yet) and the events
    between that and output_item.done; an item type without deltas (a built-in tool's call)
    is added whole."""
    kind = item.get("type")
    place = {"item_id": item.get("id"), "output_index": index}
    if kind == "message":
        parts = []
        for position, part in enumerate(item.get("content") or ()):
            parts += _content_part(part, {**place, "content_index": position})
        return {**item, "status": "in_progress", "content": []}, parts
    if kind == "function_call":
        arguments = item.get("arguments") or ""
        return {**item, "status": "in_progress", "arguments": ""}, [
            ("response.function_call_arguments.delta", {**place, "delta": arguments}),
            ("response.function_call_arguments.done", {**place, "name": item.get("name"),
                                                       "arguments": arguments})]
    if kind == "reasoning":
        parts = []
        for position, summary in enumerate(item.get("summary") or ()):
            at = {**place, "summary_index": position}
            parts += [("response.reasoning_summary_part.added",
                       {**at, "part": {**summary, "text": ""}}),
                      ("response.reasoning_summary_text.delta", {**at, "delta": summary["text"]}),
                      ("response.reasoning_summary_text.done", {**at, "text": summary["text"]}),
                      ("response.reasoning_summary_part.done", {**at, "part": summary})]
        return {**item, "summary": []}, parts
    return item, []


def _content_part(part: dict, place: dict) -> list[tuple[str, dict]]:
    if part.get("type") == "refusal":
        return [("response.content_part.added", {**place, "part": {**part, "refusal": ""}}),
                ("response.refusal.delta", {**place, "delta": part["refusal"]}),
                ("response.refusal.done", {**place, "refusal": part["refusal"]}),
                ("response.content_part.done", {**place, "part": part})]
    if part.get("type") != "output_text":
        return [("response.content_part.added", {**place, "part": part}),
                ("response.content_part.done", {**place, "part": part})]
    text, logprobs = part.get("text", ""), part.get("logprobs") or []
    events = [("response.content_part.added", {**place, "part": {
        **part, "text": "", "annotations": [], "logprobs": []}}),
              ("response.output_text.delta", {**place, "delta": text, "logprobs": logprobs})]
    events += [("response.output_text.annotation.added",
                {**place, "annotation_index": position, "annotation": annotation})
               for position, annotation in enumerate(part.get("annotations") or ())]
    events += [("response.output_text.done", {**place, "text": text, "logprobs": logprobs}),
               ("response.content_part.done", {**place, "part": part})]
    return events
