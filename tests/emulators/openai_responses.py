"""OpenAI's Responses API (`POST /v1/responses`) as the OpenAI emulator serves it.

Requests are held to the official contract's CreateResponse schema, and every answer and
stream event the emulator sends to its own Response / ResponseStreamEvent schemas. Stored
responses (store defaults to true) can be continued with `previous_response_id`,
retrieved and deleted, as on api.openai.com. `POST /v1/responses/input_tokens` counts a
request's input as the emulated model counts its prompt.
"""
from __future__ import annotations

import json
import time
from typing import Iterator

from tests.emulators.contracts import Contract, transformed
from tests.emulators.model import Generation, Tool, Turn, count_prompt, generate, stream_pieces
from tests.emulators.server import Call, Reply, sse


def _one_of_as_any_of(node: dict) -> dict:
    """The spec's item unions overlap (an easy message is also an input message), so `oneOf`
    rejects valid input; `anyOf` keeps every alternative's own checks."""
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    return node


CONTRACT = Contract("openai/openapi.yaml", adapt=lambda spec: transformed(spec, _one_of_as_any_of))
RESPONSE = "/components/schemas/Response"
TOKEN_COUNT = "/components/schemas/TokenCountsResource"
EVENT = "/components/schemas/ResponseStreamEvent"

# Models that reason: they emit a reasoning item when `reasoning.summary` is asked for.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content or ()
                    if part.get("type") in ("input_text", "output_text"))


def turns_of(items: list[dict]) -> list[Turn]:
    """Input items as the emulated model's turns (reasoning items carry nothing it reads)."""
    turns: list[Turn] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            turns.append(Turn(role, _text_of(item.get("content"))))
        elif kind == "function_call":
            name = item["name"] if not item.get("namespace") else \
                f"{item['namespace']}.{item['name']}"
            call = {"id": item["call_id"], "name": name,
                    "arguments": json.loads(item.get("arguments") or "{}")}
            if turns and turns[-1].role == "assistant" and not turns[-1].text:
                turns[-1].tool_calls.append(call)
            else:
                turns.append(Turn("assistant", "", [call]))
        elif kind == "function_call_output":
            output = item.get("output")
            turns.append(Turn("tool", output if isinstance(output, str) else _text_of(output),
                              tool_call_id=item["call_id"]))
    return turns


def _tools(body: dict) -> list[Tool]:
    tools = []
    for tool in body.get("tools") or ():
        if tool.get("type") == "function":
            tools.append(Tool(tool["name"], tool.get("parameters") or {}))
        elif tool.get("type") == "namespace":
            tools.extend(Tool(f"{tool['name']}.{inner['name']}", inner.get("parameters") or {})
                         for inner in tool["tools"] if inner.get("type") == "function")
    return tools


def _choice(body: dict) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice.get("name")
    return choice


class ResponsesAPI:
    """The Responses endpoints of one emulator; `stored` keeps each stored response's whole
    conversation (input and output items) under its id."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.stored: dict[str, dict] = {}

    def handle(self, call: Call, model_error) -> Reply:
        for path, operation in (("/responses", self.create),
                                ("/responses/input_tokens", self.count)):
            if call.method == "POST" and call.path.endswith(path):
                problems = CONTRACT.errors(CONTRACT.request_body_pointer(path), call.body)
                if problems:
                    self.emulator.check_contract(problems, f"request to {call.path}")
                    return model_error(400, "contract violation: " + "; ".join(problems),
                                       "invalid_request_error")
                return operation(call.body, model_error)
        response_id = call.path.rstrip("/").rsplit("/", 1)[-1]
        stored = self.stored.get(response_id)
        if stored is None:
            return model_error(404, f"No response found with id '{response_id}'.",
                               "invalid_request_error")
        if call.method == "GET":
            return Reply(200, stored["response"])
        if call.method == "DELETE":
            del self.stored[response_id]
            return Reply(200, {"id": response_id, "object": "response", "deleted": True})
        return model_error(404, f"Unknown request URL: {call.method} {call.path}",
                           "invalid_request_error")

    def context(self, body: dict, model_error) -> tuple[list[dict], list[dict]] | Reply:
        """(the earlier items `previous_response_id` continues, the request's own items), or
        the error for an unknown previous response."""
        raw = body.get("input") or []
        items = raw if isinstance(raw, list) else [
            {"type": "message", "role": "user", "content": raw}]
        previous = body.get("previous_response_id")
        if previous and previous not in self.stored:
            return model_error(400, f"Previous response with id '{previous}' not found.",
                               "invalid_request_error")
        return (self.stored[previous]["items"] if previous else []), items

    @staticmethod
    def turns(body: dict, history: list[dict], items: list[dict]) -> list[Turn]:
        instructions = [{"type": "message", "role": "developer", "content": body["instructions"]}
                        ] if body.get("instructions") else []
        return turns_of(instructions + history + items)

    def count(self, body: dict, model_error) -> Reply:
        context = self.context(body, model_error)
        if isinstance(context, Reply):
            return context
        answer = {"object": "response.input_tokens",
                  "input_tokens": count_prompt(self.turns(body, *context))}
        self.emulator.check_answer(CONTRACT.errors(TOKEN_COUNT, answer), "token count answer")
        return Reply(200, answer)

    def create(self, body: dict, model_error) -> Reply:
        context = self.context(body, model_error)
        if isinstance(context, Reply):
            return context
        history, items = context
        turns = self.turns(body, history, items)
        number = next(self.emulator._ids)
        g = generate(turns, _tools(body), _choice(body), body.get("max_output_tokens"), None,
                     number)
        response = self._response(body, g, number)
        if body.get("store", True):
            self.stored[response["id"]] = {"response": response,
                                           "items": history + items + response["output"]}
        if body.get("stream"):
            return Reply(200, events=self._stream(response), content_type="text/event-stream")
        self.emulator.check_answer(CONTRACT.errors(RESPONSE, response), "Response answer")
        return Reply(200, response)

    def _response(self, body: dict, g: Generation, number: int) -> dict:
        output = []
        reasoning_tokens = 0
        summary_asked = (body.get("reasoning") or {}).get("summary")
        if summary_asked and body["model"].startswith(REASONING_PREFIXES):
            item = {"id": f"rs_emu{number}", "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": "Thinking it over."}]}
            if "reasoning.encrypted_content" in (body.get("include") or ()):
                item["encrypted_content"] = f"enc-emu-{number}"
            output.append(item)
            reasoning_tokens = 3
        if g.tool_call:
            namespace, _, name = g.tool_call["name"].rpartition(".")
            item = {"id": f"fc_emu{number}", "type": "function_call", "status": "completed",
                    "call_id": g.tool_call["id"], "name": name,
                    "arguments": json.dumps(g.tool_call["arguments"])}
            if namespace:
                item["namespace"] = namespace
            output.append(item)
        else:
            output.append({"id": f"msg_emu{number}", "type": "message", "role": "assistant",
                           "status": "incomplete" if g.finish == "length" else "completed",
                           "content": [{"type": "output_text", "text": g.text,
                                        "annotations": [], "logprobs": []}]})
        incomplete = g.finish == "length"
        output_tokens = g.completion_tokens + reasoning_tokens
        return {
            "id": f"resp_emu{number:08d}", "object": "response", "created_at": int(time.time()),
            "status": "incomplete" if incomplete else "completed",
            "completed_at": None if incomplete else int(time.time()),
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": body.get("instructions"), "model": body["model"], "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "max_output_tokens": body.get("max_output_tokens"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
            "truncation": body.get("truncation", "disabled"),
            "metadata": body.get("metadata") or {},
            **({"user": body["user"]} if body.get("user") else {}),
            "usage": {"input_tokens": g.prompt_tokens,
                      "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                      "output_tokens": output_tokens,
                      "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                      "total_tokens": g.prompt_tokens + output_tokens},
        }

    def _stream(self, response: dict) -> Iterator[bytes]:
        for event in stream_events(response):
            self.emulator.check_answer(CONTRACT.errors(EVENT, event), f"{event['type']} event")
            yield sse(event, event["type"])


def stream_events(response: dict) -> Iterator[dict]:
    """The events OpenAI streams for a finished response, numbered from 0."""
    number = iter(range(1 << 30))
    in_progress = {**response, "status": "in_progress", "output": [], "completed_at": None,
                   "incomplete_details": None}
    del in_progress["usage"]

    def event(kind: str, **fields) -> dict:
        return {"type": kind, "sequence_number": next(number), **fields}

    yield event("response.created", response=in_progress)
    yield event("response.in_progress", response=in_progress)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "content": []})
            text = item["content"][0]["text"]
            place = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **place,
                        part={"type": "output_text", "text": "", "annotations": [],
                              "logprobs": []})
            for piece in stream_pieces(text):
                yield event("response.output_text.delta", **place, delta=piece, logprobs=[])
            yield event("response.output_text.done", **place, text=text, logprobs=[])
            yield event("response.content_part.done", **place, part=item["content"][0])
        elif item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "arguments": ""})
            arguments = item["arguments"]
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                yield event("response.function_call_arguments.delta", item_id=item["id"],
                            output_index=index, delta=piece)
            yield event("response.function_call_arguments.done", item_id=item["id"],
                        output_index=index, name=item["name"], arguments=arguments)
        elif item["type"] == "reasoning":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "summary": []})
            for s_index, part in enumerate(item["summary"]):
                place = {"item_id": item["id"], "output_index": index, "summary_index": s_index}
                yield event("response.reasoning_summary_part.added", **place,
                            part={"type": "summary_text", "text": ""})
                yield event("response.reasoning_summary_text.delta", **place,
                            delta=part["text"])
                yield event("response.reasoning_summary_text.done", **place, text=part["text"])
                yield event("response.reasoning_summary_part.done", **place, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    yield event(final, response=response)
