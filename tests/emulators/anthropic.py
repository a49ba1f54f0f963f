"""Anthropic Messages API emulator: POST /v1/messages (and /v1/messages/count_tokens) like
api.anthropic.com.

Requests are checked against Anthropic's official OpenAPI contract plus the rules the live
API enforces that the schema does not express (user-first turns, no empty turns, no blank
text or stop sequences, tool_use/tool_result pairing and tool history only with `tools`,
`temperature` and `top_p` not both, as newer models refuse). Consecutive same-role turns are
merged, as the API does. Answers (JSON bodies and every stream event) are themselves
checked against the contract's response schemas, so the emulator cannot drift from it.
Prompt caching is emulated: the blocks up to the last `cache_control` marker are written
to the cache the first time (cache_creation_input_tokens) and read from it afterwards.
"""
from __future__ import annotations

import hashlib
import json

from tests.emulators.contracts import Contract
from tests.emulators.model import Tool, Turn, count_words, generate, stream_pieces
from tests.emulators.server import Call, Emulator, Reply, sse

CONTRACT = Contract("anthropic/openapi.json")
REQUEST = CONTRACT.request_body_pointer("/v1/messages")
# With an `anthropic-beta` header the API takes the beta request shape (Claude Code's).
BETA_REQUEST = CONTRACT.request_body_pointer("/v1/messages?beta=true")
# The beta that lets a conversation carry `role: system` turns (Claude Code 2.1 sends one);
# the contract predates it, so such turns are checked as the user turns they stand beside.
SYSTEM_TURNS_BETA = "per-turn-control-2026-07-01"
COUNT_PATH = "/v1/messages/count_tokens"
COUNT_REQUEST = CONTRACT.request_body_pointer(COUNT_PATH)
COUNT_ANSWER = "/components/schemas/CountMessageTokensResponse"
MESSAGE = "/components/schemas/Message"
ERROR = "/components/schemas/ErrorResponse"
EVENT = "/components/schemas/MessageStreamEvent"
STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def error_body(type_: str, message: str, request_id: str | None = "req_emu") -> dict:
    return {"type": "error", "error": {"type": type_, "message": message},
            "request_id": request_id}


def anthropic_error(status: int, type_: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, error_body(type_, message), {"request-id": "req_emu", **(headers or {})})


def merged(messages: list[dict]) -> list[dict]:
    """Consecutive same-role turns as one, content as blocks (what the API does first)."""
    turns: list[dict] = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if turns and turns[-1]["role"] == message["role"]:
            turns[-1]["content"] = turns[-1]["content"] + blocks
        else:
            turns.append({"role": message["role"], "content": list(blocks)})
    return turns


def block_text(content) -> str:
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or () if b.get("type") == "text")


def signature(thinking: str) -> str:
    """The emulator's signature of a thinking text (the API checks the ones sent back)."""
    return "EmuSig" + hashlib.sha256(thinking.encode()).hexdigest()[:32]


def thinking_rules(body: dict, turns: list[dict]) -> list[str]:
    """Extended thinking: budget below max_tokens, no sampling changes, and the assistant turn
    of the tool loop in progress starts with its thinking, signatures intact."""
    thinking = body.get("thinking") or {}
    problems = []
    for turn in turns:
        for block in turn["content"]:
            if block["type"] == "thinking" and block["signature"] != signature(block["thinking"]):
                problems.append("Invalid `signature` in `thinking` block")
    if thinking.get("type") not in ("enabled", "adaptive"):
        return problems
    if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= body["max_tokens"]:
        problems.append("`max_tokens` must be greater than `thinking.budget_tokens`")
    if body.get("temperature", 1) != 1:
        problems.append("`temperature` may only be set to 1 when thinking is enabled or in "
                        "adaptive mode")
    last_user = turns[-1] if turns and turns[-1]["role"] == "user" else None
    if last_user and any(b["type"] == "tool_result" for b in last_user["content"]) and \
            len(turns) > 1 and turns[-2]["content"][0]["type"] not in (
                "thinking", "redacted_thinking"):
        problems.append("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, "
                        "but found `tool_use`. When `thinking` is enabled, a final `assistant` "
                        "message must start with a thinking block")
    return problems


def betas(call: Call) -> list[str]:
    return [b.strip() for b in (call.headers.get("anthropic-beta") or "").split(",") if b.strip()]


def without_system_turns(body: dict) -> dict:
    return {**body, "messages": [m for m in body["messages"] if m.get("role") != "system"]}


def api_rules(body: dict, system_turns: bool = False) -> list[str]:
    """What the live API refuses although the schema allows it."""
    problems = []
    if system_turns:
        body = without_system_turns(body)
    messages = body["messages"]
    if any(m["role"] == "system" for m in messages):
        return ['messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.']
    turns = merged(messages)
    if not turns or turns[0]["role"] != "user":
        problems.append('messages: first message must use the "user" role')
    for i, turn in enumerate(turns):
        if not turn["content"] and not (i == len(turns) - 1 and turn["role"] == "assistant"):
            problems.append(f"messages.{i}: all messages must have non-empty content except "
                            f"for the optional final assistant message")
        for block in turn["content"]:
            if block["type"] == "text" and not block["text"].strip():
                problems.append("messages: text content blocks must contain non-whitespace text")
        uses = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
        after = turns[i + 1]["content"] if i + 1 < len(turns) else []
        answered = {b["tool_use_id"] for b in after if b["type"] == "tool_result"}
        if uses and set(uses) - answered:
            problems.append(f"messages.{i}: `tool_use` ids were found without `tool_result` "
                            f"blocks immediately after: {', '.join(sorted(set(uses) - answered))}")
        before = turns[i - 1]["content"] if i else []
        offered = {b["id"] for b in before if b["type"] == "tool_use"}
        for b in turn["content"]:
            if b["type"] == "tool_result" and b["tool_use_id"] not in offered:
                problems.append(f"messages.{i}: unexpected `tool_use_id` found in `tool_result` "
                                f"blocks: {b['tool_use_id']}")
    if turns and turns[-1]["role"] == "assistant" and turns[-1]["content"] and \
            block_text(turns[-1]["content"][-1:]) != block_text(turns[-1]["content"][-1:]).rstrip():
        problems.append("messages: final assistant content cannot end with trailing whitespace")
    if body.get("temperature") is not None and body.get("top_p") is not None:
        problems.append("`temperature` and `top_p` cannot both be specified for this model. "
                        "Please use only one.")
    tool_blocks = any(b["type"] in ("tool_use", "tool_result") for t in turns
                      for b in t["content"])
    if tool_blocks and not body.get("tools"):
        problems.append("Requests which include `tool_use` or `tool_result` blocks must "
                        "define tools.")
    problems += thinking_rules(body, turns)
    if any(not s.strip() for s in body.get("stop_sequences") or ()):
        problems.append("stop_sequences: each stop sequence must contain non-whitespace")
    return problems


def model_turns(body: dict) -> list[Turn]:
    system = body.get("system")
    turns = [Turn("system", block_text(system))] if system else []
    for turn in merged(body["messages"]):
        content = turn["content"]
        if turn["role"] == "system":
            turns.append(Turn("system", block_text(content)))
            continue
        if turn["role"] == "assistant":
            calls = [{"id": b["id"], "name": b["name"], "arguments": b["input"]}
                     for b in content if b["type"] == "tool_use"]
            turns.append(Turn("assistant", block_text(content), calls))
            continue
        for b in content:
            if b["type"] == "tool_result":
                turns.append(Turn("tool", block_text(b.get("content")), [], b["tool_use_id"]))
        text = block_text(content)
        if text:
            turns.append(Turn("user", text))
    return turns


class AnthropicEmulator(Emulator):
    name = "anthropic"
    api_key = "sk-ant-test-key-0123456789"
    key_env, base_env = "ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE"
    version = "2023-06-01"
    # Every API version the live API takes: the one this proxy speaks, and the one the
    # official SDK sends (forwarded by the Messages pass-through).
    versions = ("2023-01-01", "2023-06-01", "2026-10-21")

    def reset_knobs(self) -> None:
        self.cached: set[str] = set()
        self.stream_error: tuple[int, dict] | None = None

    def fail_mid_stream(self, after_events: int, type_: str = "overloaded_error",
                        message: str = "Overloaded") -> None:
        """The next stream sends `after_events` events, then `event: error`, then ends."""
        self.stream_error = (after_events, {"type": "error",
                                            "error": {"type": type_, "message": message}})

    def handle(self, call: Call) -> Reply:
        if call.method != "POST" or call.path not in ("/v1/messages", COUNT_PATH):
            return anthropic_error(404, "not_found_error", f"Not found: {call.path}")
        if call.headers.get("x-api-key") != self.api_key:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if call.headers.get("anthropic-version") not in self.versions:
            self.check_contract([f"anthropic-version {call.headers.get('anthropic-version')!r}"],
                                "headers")
            return anthropic_error(400, "invalid_request_error",
                                   "anthropic-version: header is required")
        if not isinstance(call.body, dict):
            return anthropic_error(400, "invalid_request_error", "request body is not JSON")
        counting = call.path == COUNT_PATH
        beta = betas(call)
        system_turns = SYSTEM_TURNS_BETA in beta and isinstance(call.body.get("messages"), list)
        checked = without_system_turns(call.body) if system_turns else call.body
        problems = CONTRACT.errors(COUNT_REQUEST if counting else BETA_REQUEST if beta
                                   else REQUEST, checked)
        problems = problems or api_rules(call.body, system_turns)
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return anthropic_error(400, "invalid_request_error", "; ".join(problems))
        if counting:
            answer = {"input_tokens": sum(map(count_words, (
                block_text(call.body.get("system")), *(block_text(m["content"])
                                                       for m in call.body["messages"]))))}
            self.check_answer(CONTRACT.errors(COUNT_ANSWER, answer), "token count")
            return Reply(200, answer, {"request-id": "req_emu"})
        message = self.answer(call.body)
        if call.body.get("stream"):
            return Reply(200, events=self.events(message), content_type="text/event-stream",
                         headers={"request-id": "req_emu"})
        self.check_answer(CONTRACT.errors(MESSAGE, message), "Message answer")
        return Reply(200, message, {"request-id": "req_emu"})

    def answer(self, body: dict) -> dict:
        tools = [Tool(t["name"], t["input_schema"]) for t in body.get("tools") or ()
                 if "input_schema" in t]  # server tools (web search) run at Anthropic
        choice = body.get("tool_choice") or {"type": "auto"}
        choice = choice.get("name") or TOOL_CHOICES[choice["type"]]
        number = next(self._ids)
        g = generate(model_turns(body), tools, choice, body["max_tokens"],
                     body.get("stop_sequences"), number)
        content = []
        if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
            thought = f"The user wrote {count_words(block_text(body['messages'][-1]['content']))} words."
            content.append({"type": "thinking", "thinking": thought,
                            "signature": signature(thought)})
            g.completion_tokens += count_words(thought)
        if g.text:
            content.append({"type": "text", "text": g.text, "citations": None})
        if g.tool_call:
            content.append({"type": "tool_use", "id": "toolu_" + g.tool_call["id"][5:],
                            "name": g.tool_call["name"], "input": g.tool_call["arguments"],
                            "caller": {"type": "direct"}})
        stop = STOP_REASONS.get(g.finish, "stop_sequence" if g.stopped_by else "end_turn")
        return {"id": f"msg_emu{number:04d}", "type": "message", "role": "assistant",
                "content": content, "model": body["model"], "stop_reason": stop,
                "stop_sequence": g.stopped_by, "stop_details": None, "container": None,
                "usage": self.usage(body, g.prompt_tokens, g.completion_tokens)}

    def usage(self, body: dict, prompt_tokens: int, output_tokens: int) -> dict:
        system = body.get("system")
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(
            system or ())
        blocks += [b for m in body["messages"] for b in (
            [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str)
            else m["content"])]
        marked = [i for i, b in enumerate(blocks) if b.get("cache_control")]
        prefix = blocks[:marked[-1] + 1] if marked else []
        cached = sum(count_words(block_text([b])) for b in prefix)
        key = json.dumps(prefix, sort_keys=True)
        read = cached if prefix and key in self.cached else 0
        if prefix:
            self.cached.add(key)
        return {"input_tokens": max(0, prompt_tokens - cached), "output_tokens": output_tokens,
                "cache_creation_input_tokens": cached - read, "cache_read_input_tokens": read,
                "cache_creation": None, "inference_geo": None, "server_tool_use": None,
                "service_tier": "standard"}

    def events(self, message: dict):
        """The Messages stream for `message`, each event checked against the contract."""
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**message["usage"], "output_tokens": 1}}
        frames = [{"type": "message_start", "message": start}, {"type": "ping"}]
        for index, block in enumerate(message["content"]):
            if block["type"] == "thinking":
                frames.append({"type": "content_block_start", "index": index,
                               "content_block": {**block, "thinking": "", "signature": ""}})
                frames += [{"type": "content_block_delta", "index": index,
                            "delta": {"type": "thinking_delta", "thinking": piece}}
                           for piece in stream_pieces(block["thinking"])]
                frames.append({"type": "content_block_delta", "index": index, "delta": {
                    "type": "signature_delta", "signature": block["signature"]}})
            elif block["type"] == "text":
                frames.append({"type": "content_block_start", "index": index,
                               "content_block": {**block, "text": ""}})
                frames += [{"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": piece}}
                           for piece in stream_pieces(block["text"])]
            else:
                frames.append({"type": "content_block_start", "index": index,
                               "content_block": {**block, "input": {}}})
                # An empty input streams as one empty fragment, as the API does.
                args = json.dumps(block["input"])
                pieces = (args[:len(args) // 2], args[len(args) // 2:]) if block["input"] else ("",)
                frames += [{"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}
                           for piece in pieces]
            frames.append({"type": "content_block_stop", "index": index})
        usage = {key: message["usage"][key] for key in (
            "input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens", "server_tool_use")}
        frames.append({"type": "message_delta", "usage": usage, "delta": {
            "stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"],
            "stop_details": None, "container": None}})
        frames.append({"type": "message_stop"})
        failure, self.stream_error = self.stream_error, None
        for position, frame in enumerate(frames):
            if failure and position == failure[0]:
                yield sse(failure[1], "error")
                return
            self.check_answer(CONTRACT.errors(EVENT, frame), f"{frame['type']} event")
            yield sse(frame, frame["type"])
