"""Cohere v2 chat emulator: POST /v2/chat like api.cohere.com.

Requests are checked against the `/v2/chat` request schema of Cohere's official OpenAPI
contract (read from ../shared, never copied here) plus rules the API documents in prose
but the schema does not express. Answers, error bodies and every stream event are checked
against the contract's response schemas too, so the emulator cannot drift from it.

The contract is applied to a normalised *copy* of the spec (the shared file and the cached
copy other tests use stay untouched):
1. `oneOf` + `discriminator` is validated the way OpenAPI defines a discriminator: the
   discriminating property picks the one branch to check. Plain `oneOf` rejects valid
   bodies where branches overlap, e.g. `response_format: {"type": "json_object"}` matches
   both the text and the JSON branch of `ResponseFormatV2` ("valid under each of").
2. `LogprobItem.required` lists `token` and `logprob`, properties the schema does not
   define (it defines `text`, `token_ids`, `logprobs`, which is what the API and Cohere's SDK
   use); the copy requires the defined `token_ids` instead.
3. `EmbedByTypeResponse.required` lists `api_version`, which it does not define either (the
   API sends it inside `meta`); the copy requires only the properties it defines.
"""
from __future__ import annotations

import json
import uuid

from tests.emulators.contracts import Contract, transformed
from tests.emulators.model import (Tool, Turn, count_words, embed_text, generate,
                                   stream_pieces)
from tests.emulators.server import Call, Emulator, Reply, sse

SPEC = "cohere/cohere-openapi.yaml"
CHAT_PATH = "/v2/chat"
RESPONSE = "/components/schemas/ChatResponseV2"
EVENT = "/components/schemas/StreamedChatResponseV2"
ERROR = "/components/responses/RateLimit/content/application~1json/schema"
FINISH = {"length": "MAX_TOKENS", "tool_calls": "TOOL_CALL"}
THOUGHT = "Weighing the question first."
TOOL_CHOICES = {"REQUIRED": "required", "NONE": "none"}
TEMPLATE_TOKENS = 7   # `tokens.input_tokens` counts Cohere's prompt template; billing does not


def _by_discriminator(node: dict) -> dict:
    """Rule 1: check only the branch the discriminating property names."""
    if not (isinstance(node.get("discriminator"), dict) and "oneOf" in node):
        return node
    prop = node["discriminator"]["propertyName"]
    mapping = node["discriminator"]["mapping"]
    rest = {k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}
    return {**rest, "type": "object", "required": [prop],
            "properties": {prop: {"enum": list(mapping)}},
            "allOf": [{"if": {"properties": {prop: {"const": value}}}, "then": {"$ref": ref}}
                      for value, ref in mapping.items()]}


def _adapted(spec: dict) -> dict:
    """The spec with the two corrections described in the module docstring."""
    spec = transformed(spec, _by_discriminator)                                 # rule 1
    spec["components"]["schemas"]["LogprobItem"]["required"] = ["token_ids"]   # rule 2
    embed = spec["components"]["schemas"]["EmbedByTypeResponse"]               # rule 3
    embed["required"] = [name for name in embed["required"] if name in embed["properties"]]
    return spec


CONTRACT = Contract(SPEC, adapt=_adapted)
REQUEST = CONTRACT.request_body_pointer(CHAT_PATH)
EMBED_PATH = "/v2/embed"
EMBED_REQUEST = CONTRACT.request_body_pointer(EMBED_PATH)
EMBED_RESPONSE = "/components/schemas/EmbedByTypeResponse"
EMBED_DIMENSIONS = 16   # embed-english-v3.0 has 1024; a short vector keeps the tests light


def cohere_error(status: int, message: str, headers: dict | None = None) -> Reply:
    """An error the way Cohere sends it: {"id", "message"}."""
    return Reply(status, {"id": str(uuid.uuid4()), "message": message}, headers or {})


def _text(content) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    return " ".join(part.get("text", "") for part in content if part.get("type") == "text")


def turns_of(messages: list[dict]) -> list[Turn]:
    turns = []
    for m in messages:
        calls = [{"id": c["id"], "name": c["function"]["name"],
                  "arguments": json.loads(c["function"].get("arguments") or "{}")}
                 for c in m.get("tool_calls") or ()]
        text = m.get("tool_plan", "") if calls else _text(m.get("content"))
        turns.append(Turn(m["role"], text, calls, m.get("tool_call_id")))
    return turns


def api_rules(body: dict) -> list[str]:
    """What Cohere documents (in prose, not in the schema) and refuses."""
    problems = []
    for name in ("frequency_penalty", "presence_penalty"):
        if name in body and not 0 <= body[name] <= 1:
            problems.append(f"{name} must be between 0 and 1")
    if len(body.get("stop_sequences") or ()) > 5:
        problems.append("stop_sequences holds at most 5 strings")
    if body.get("tool_choice") == "REQUIRED" and not body.get("tools"):
        problems.append("tool_choice REQUIRED needs tools")
    called: set[str] = set()
    for position, message in enumerate(body["messages"]):
        called.update(c["id"] for c in message.get("tool_calls") or ())
        if message["role"] == "tool" and message["tool_call_id"] not in called:
            problems.append(f"messages[{position}]: tool_call_id {message['tool_call_id']!r} "
                            f"answers no earlier tool call")
    return problems


class CohereEmulator(Emulator):
    name = "cohere"
    api_key = "cohere-test-key-0123456789abcdef0123"
    key_env, base_env = "COHERE_API_KEY", "COHERE_API_BASE"

    # -- test controls ---------------------------------------------------------------------
    def reset_knobs(self) -> None:
        self._stream_failures: list[tuple[str, int]] = []

    def fail_next_stream(self, message: str, after: int = 2) -> None:
        """The next stream sends `after` text pieces, then message-end with this error."""
        with self._lock:
            self._stream_failures.append((message, after))

    # -- requests --------------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        if call.method == "POST" and call.path == EMBED_PATH:
            return self.embed(call)
        if call.method != "POST" or call.path != CHAT_PATH:
            return self._error(404, f"no route for {call.method} {call.path}")
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid api token")
        if not isinstance(call.body, dict):
            return self._error(400, "invalid request: the body is not a JSON object")
        problems = CONTRACT.errors(REQUEST, call.body) or api_rules(call.body)
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return self._error(400, "invalid request: " + "; ".join(problems))
        if not call.body["model"].startswith("command"):
            return self._error(404, f"model '{call.body['model']}' not found, make sure the "
                                    f"correct model ID was used and that you have access to it.")
        return self.complete(call.body)

    def embed(self, call: Call) -> Reply:
        """POST /v2/embed: float embeddings of `texts`, billed per input word."""
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "invalid api token")
        problems = CONTRACT.errors(EMBED_REQUEST, call.body) if isinstance(call.body, dict) \
            else ["the body is not a JSON object"]
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return self._error(400, "invalid request: " + "; ".join(problems))
        body = call.body
        if not body["model"].startswith("embed-"):
            return self._error(404, f"model '{body['model']}' not found")
        size = body.get("output_dimension") or EMBED_DIMENSIONS
        texts = body.get("texts") or []
        answer = {"id": str(uuid.uuid4()), "response_type": "embeddings_by_type",
                  "embeddings": {"float": [embed_text(f"{body['input_type']}:{t}", size)
                                           for t in texts]},
                  "texts": texts, "meta": {"api_version": {"version": "2"}, "billed_units": {
                      "input_tokens": sum(count_words(t) for t in texts)}}}
        self.check_answer(CONTRACT.errors(EMBED_RESPONSE, answer), "embed response")
        return Reply(200, answer)

    def _error(self, status: int, message: str) -> Reply:
        reply = cohere_error(status, message)
        self.check_answer(CONTRACT.errors(ERROR, reply.body), "error body")
        return reply

    def complete(self, body: dict) -> Reply:
        tools = [Tool(t["function"]["name"], t["function"]["parameters"])
                 for t in body.get("tools") or ()]
        g = generate(turns_of(body["messages"]), tools, TOOL_CHOICES.get(body.get("tool_choice")),
                     body.get("max_tokens"), body.get("stop_sequences"))
        finish = FINISH.get(g.finish) or ("STOP_SEQUENCE" if g.stopped_by else "COMPLETE")
        usage = {"billed_units": {"input_tokens": g.prompt_tokens,
                                  "output_tokens": g.completion_tokens},
                 "tokens": {"input_tokens": g.prompt_tokens + TEMPLATE_TOKENS,
                            "output_tokens": g.completion_tokens},
                 "cached_tokens": 0}
        response_id = str(uuid.uuid4())
        pieces = stream_pieces(g.text)
        logprobs = [{"text": piece, "token_ids": [i + 1], "logprobs": [-0.25]}
                    for i, piece in enumerate(pieces)] if body.get("logprobs") else None
        thinking = THOUGHT if (body.get("thinking") or {}).get("type") == "enabled" else None
        if body.get("stream"):
            events = self._events(response_id, g, pieces, logprobs, finish, usage, thinking)
            return Reply(200, events=events, content_type="text/event-stream")
        if g.tool_call:
            message = {"role": "assistant", "tool_plan": f"I will call {g.tool_call['name']}.",
                       "tool_calls": [self._call(g.tool_call)]}
        else:
            message = {"role": "assistant", "content": [{"type": "text", "text": g.text}]}
        if thinking:
            message["content"] = [{"type": "thinking", "thinking": thinking},
                                  *message.get("content", ())]
        answer = {"id": response_id, "finish_reason": finish, "message": message, "usage": usage}
        if logprobs:
            answer["logprobs"] = logprobs
        self.check_answer(CONTRACT.errors(RESPONSE, answer), "response")
        return Reply(200, answer)

    @staticmethod
    def _call(tool_call: dict, arguments: str | None = None) -> dict:
        return {"id": tool_call["id"], "type": "function",
                "function": {"name": tool_call["name"],
                             "arguments": json.dumps(tool_call["arguments"])
                             if arguments is None else arguments}}

    def _events(self, response_id, g, pieces, logprobs, finish, usage, thinking=None):
        """The v2 event sequence, each event checked, framed as `event:` + `data:`."""
        with self._lock:
            failure = self._stream_failures.pop(0) if self._stream_failures else None
        events = [{"id": response_id, "type": "message-start", "delta": {"message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
            "citations": []}}}]
        if thinking:
            events.append({"type": "content-start", "index": 0, "delta": {"message": {
                "content": {"type": "thinking", "thinking": ""}}}})
            events += [{"type": "content-delta", "index": 0, "delta": {"message": {
                "content": {"thinking": piece}}}} for piece in stream_pieces(thinking)]
            events.append({"type": "content-end", "index": 0})
        if g.tool_call:
            arguments = json.dumps(g.tool_call["arguments"])
            events += [{"type": "tool-plan-delta", "delta": {"message": {"tool_plan": word}}}
                       for word in stream_pieces(f"I will call {g.tool_call['name']}.")]
            events.append({"type": "tool-call-start", "index": 0, "delta": {"message": {
                "tool_calls": self._call(g.tool_call, "")}}})
            events += [{"type": "tool-call-delta", "index": 0, "delta": {"message": {
                "tool_calls": {"function": {"arguments": part}}}}}
                for part in (arguments[:len(arguments) // 2], arguments[len(arguments) // 2:])]
            events.append({"type": "tool-call-end", "index": 0})
        else:
            events.append({"type": "content-start", "index": 0, "delta": {"message": {
                "content": {"type": "text", "text": ""}}}})
            for i, piece in enumerate(pieces[:failure[1]] if failure else pieces):
                event = {"type": "content-delta", "index": 0,
                         "delta": {"message": {"content": {"text": piece}}}}
                if logprobs:
                    event["logprobs"] = logprobs[i]
                events.append(event)
            if not failure:
                events.append({"type": "content-end", "index": 0})
        end = {"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}
        if failure:
            end = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": failure[0]}}
        events.append(end)
        for event in events:
            self.check_answer(CONTRACT.errors(EVENT, event), f"{event['type']} event")
            yield sse(event, event["type"])
        yield b"data: [DONE]\n\n"
