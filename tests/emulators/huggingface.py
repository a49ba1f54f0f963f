"""Hugging Face emulator: the router's chat route, its serverless text-generation route, and
a TGI server's /generate and /generate_stream (an Inference Endpoint: Bearer auth too).

Routes and their contracts:
- POST /v1/chat/completions: huggingface-tasks/chat-completion/input.json
- POST /hf-inference/models/<owner>/<repo>: huggingface-tasks/text-generation/input.json
- POST /generate, /generate_stream: hf-tgi/openapi.json GenerateRequest
The task schemas are JSON Schema draft-06 plus OpenAPI's `nullable`, which jsonschema
ignores, so `nullable` is rewritten to allow null first (WIRE-FORMATS §3.7). TGI's own
validation (temperature > 0, 0 < top_p < 1, ...), which the schemas do not express, is
applied too. Every answer (bodies and stream events) is checked against the matching
output schema, so the emulator cannot drift from the contract.

TGI's behaviour is kept where it differs from OpenAI's: a stop sequence that ends
generation stays in the text (finish `stop_sequence`, also in chat answers), the stream has
one event per token plus a special `</s>` token at the end of sequence, and no [DONE].
"""
from __future__ import annotations

import json
import time

import jsonschema

from tests.emulators.contracts import Contract, Schema, allow_null, load_spec
from tests.emulators.model import Tool, Turn, count_words, embed_text, generate, stream_pieces
from tests.emulators.openai import _turns as chat_turns  # OpenAI-shaped messages -> turns
from tests.emulators.server import Call, Emulator, Fault, Reply, sse

TGI = Contract("hf-tgi/openapi.json")
TGI_REQUEST = TGI.request_body_pointer("/generate")
TGI_RESPONSE = "/components/schemas/GenerateResponse"
TGI_EVENT = "/components/schemas/StreamResponse"
TGI_ERROR = "/components/schemas/ErrorResponse"
SERVERLESS = "/hf-inference/models/"
EOS = "</s>"


def task_schema(relative: str) -> Schema:
    """One huggingface-tasks JSON Schema file, e.g. 'text-generation/input.json'."""
    return Schema(lambda: jsonschema.Draft6Validator(
        allow_null(load_spec(f"huggingface-tasks/{relative}"))))


CHAT_INPUT = task_schema("chat-completion/input.json")
CHAT_OUTPUT = task_schema("chat-completion/output.json")
CHAT_CHUNK = task_schema("chat-completion/stream_output.json")
TEXT_INPUT = task_schema("text-generation/input.json")
TEXT_OUTPUT = task_schema("text-generation/output.json")
TEXT_EVENT = task_schema("text-generation/stream_output.json")


def tgi_rules(body: dict, stream: bool) -> list[str]:
    """What TGI's router refuses although the schemas allow it (router/src/validation.rs)."""
    p = body.get("parameters") or {}
    rules = [
        (not body.get("inputs"), "`inputs` cannot be empty"),
        (p.get("temperature") is not None and p["temperature"] <= 0,
         "`temperature` must be strictly positive"),
        (p.get("top_p") is not None and not 0 < p["top_p"] < 1,
         "`top_p` must be > 0.0 and < 1.0"),
        (p.get("top_k") is not None and p["top_k"] <= 0, "`top_k` must be strictly positive"),
        (p.get("max_new_tokens") == 0, "`max_new_tokens` must be strictly positive"),
        (len(p.get("stop") or ()) > 4, "`stop` supports up to 4 stop sequences"),
        (stream and p.get("decoder_input_details"),
         "`decoder_input_details` == true is not supported when streaming tokens"),
    ]
    return [f"Input validation error: {message}" for failed, message in rules if failed]


FEATURE_EXTRACTION = "/pipeline/feature-extraction"
EMBED_DIMENSIONS = 16     # all-MiniLM-L6-v2 has 384; a short vector keeps the tests light
EMBED_BATCH_LIMIT = 32    # TEI's default --max-client-batch-size


def embed_rules(body) -> list[str]:
    """TEI's /embed body (no published schema): `inputs`, a string or up to 32 strings, and
    its few documented switches."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    inputs = body.get("inputs")
    problems = [f"unknown field `{k}`" for k in body
                if k not in ("inputs", "truncate", "normalize", "prompt_name", "dimensions")]
    if not (isinstance(inputs, str) or (isinstance(inputs, list) and inputs
                                        and all(isinstance(i, str) for i in inputs))):
        problems.append("`inputs` must be a string or a non-empty list of strings")
    elif isinstance(inputs, list) and len(inputs) > EMBED_BATCH_LIMIT:
        problems.append(f"batch size {len(inputs)} > maximum allowed batch size "
                        f"{EMBED_BATCH_LIMIT}")
    return problems


def hf_error(status: int, message, error_type: str | None = None,
             headers: dict | None = None) -> Reply:
    body = {"error": message}
    if error_type:
        body["error_type"] = error_type
    return Reply(status, body, headers or {})


def loading(model: str, estimated_time: float, times: int = 1) -> Fault:
    """The serverless API's answer while a cold model loads."""
    return Fault(Reply(503, {"error": f"Model {model} is currently loading",
                             "estimated_time": estimated_time}), times=times)


def rate_limited(reset_seconds: int = 7) -> Fault:
    return Fault(Reply(429, {"error": "Rate limit reached. You reached free usage limit "
                                      "(reset hourly). Please subscribe to a plan."},
                       {"RateLimit": f'"api";r=0;t={reset_seconds}',
                        "RateLimit-Policy": '"fixed window";"api";q=1000;w=300'}))


class HuggingFaceEmulator(Emulator):
    name = "huggingface"
    api_key = "hf_testKey0123456789abcdefABCDEF"
    key_env, base_env = "HUGGINGFACE_API_KEY", "HUGGINGFACE_API_BASE"   # the router

    def reset_knobs(self) -> None:
        self.stream_error: tuple[int, dict] | None = None

    def fail_mid_stream(self, after_events: int, message: str = "Request failed during "
                        "generation: Server error: CUDA out of memory",
                        error_type: str = "generation") -> None:
        """The next stream sends `after_events` events, then TGI's error event, then ends."""
        self.stream_error = (after_events, {"error": message, "error_type": error_type})
        self.check_answer(TGI.errors(TGI_ERROR, self.stream_error[1]), "stream error event")

    # -- routing --------------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        if call.method != "POST" or not isinstance(call.body, dict):
            return hf_error(404, f"Not Found: {call.method} {call.path}")
        if call.headers.get("authorization") != f"Bearer {self.api_key}":
            return hf_error(401, "Invalid credentials in Authorization header")
        if call.path == "/v1/chat/completions":
            return self._checked(CHAT_INPUT.errors(call.body), call, self.chat)
        if call.path == "/embed" or (call.path.startswith(SERVERLESS)
                                     and call.path.endswith(FEATURE_EXTRACTION)):
            return self._checked(embed_rules(call.body), call, self.embed)
        if call.path.startswith(SERVERLESS) and call.path.count("/") == 4:
            model = call.path[len(SERVERLESS):]
            return self._checked(TEXT_INPUT.errors(call.body), call,
                                 lambda body: self.text(body, model, serverless=True))
        if call.path in ("/generate", "/generate_stream"):
            stream = call.path == "/generate_stream"
            return self._checked(TGI.errors(TGI_REQUEST, call.body), call,
                                 lambda body: self.text({**body, "stream": stream}, "tgi",
                                                        serverless=False))
        return hf_error(404, f"Not Found: {call.path}")

    def _checked(self, problems: list[str], call: Call, answer) -> Reply:
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return hf_error(422, "Input validation error: " + "; ".join(problems), "validation")
        return answer(call.body)

    # -- embeddings: the router's feature-extraction pipeline and TEI's /embed -----------
    def embed(self, body: dict) -> Reply:
        inputs = [body["inputs"]] if isinstance(body["inputs"], str) else body["inputs"]
        return Reply(200, [embed_text(text, EMBED_DIMENSIONS) for text in inputs])

    # -- chat -----------------------------------------------------------------------
    def chat(self, body: dict) -> Reply:
        if not body.get("model"):
            self.check_contract(["the router needs `model`"], "chat request")
            return hf_error(400, "Model is required")
        tools = [Tool(t["function"]["name"], t["function"].get("parameters") or {})
                 for t in body.get("tools") or ()]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = choice["function"]["name"]
        g = generate(chat_turns(body["messages"]), tools, choice, body.get("max_tokens"),
                     body.get("stop"), next(self._ids))
        text = g.text + (g.stopped_by or "")   # TGI keeps the stop sequence
        finish = "stop_sequence" if g.stopped_by else g.finish
        created, response_id = int(time.time()), f"chatcmpl-hf{next(self._ids)}"
        head = {"id": response_id, "created": created, "model": body["model"],
                "system_fingerprint": "3.3.6-sha-emulator"}
        usage = {"prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens,
                 "total_tokens": g.prompt_tokens + g.completion_tokens}
        if body.get("stream"):
            return Reply(200, events=self._chat_stream(body, head, g, text, finish, usage),
                         content_type="text/event-stream")
        message = {"role": "assistant", "content": text}
        if g.tool_call:
            message = {"role": "assistant", "tool_calls": [{
                "id": g.tool_call["id"], "type": "function",
                "function": {"name": g.tool_call["name"],
                             "arguments": json.dumps(g.tool_call["arguments"])}}]}
        answer = {**head, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]}
        self.check_answer(CHAT_OUTPUT.errors(answer), "chat answer")
        return Reply(200, answer)

    def _chat_stream(self, body, head, g, text, finish, usage):
        include_usage = (body.get("stream_options") or {}).get("include_usage")

        def chunks():
            def chunk(delta, reason=None):
                return {**head, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {"role": "assistant", **delta}, "logprobs": None,
                     "finish_reason": reason}], **({"usage": None} if include_usage else {})}
            if g.tool_call:
                arguments = json.dumps(g.tool_call["arguments"])
                for n, piece in enumerate((arguments[:5], arguments[5:])):
                    yield chunk({"tool_calls": [{
                        "index": 0, "id": g.tool_call["id"], "type": "function",
                        "function": {"name": g.tool_call["name"] if n == 0 else None,
                                     "arguments": piece}}]})
            for piece in stream_pieces(text):
                yield chunk({"content": piece})
            yield chunk({"content": ""}, finish)
            if include_usage:
                yield {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}

        for number, data in enumerate(chunks()):
            if self._stream_broken(number):
                yield sse(self.stream_error[1])
                return
            self.check_answer(CHAT_CHUNK.errors(data), "chat chunk")
            yield sse(data)
        yield b"data: [DONE]\n\n"

    def _stream_broken(self, number: int) -> bool:
        return self.stream_error is not None and number == self.stream_error[0]

    # -- text generation ------------------------------------------------------------
    def text(self, body: dict, model: str, serverless: bool) -> Reply:
        stream = bool(body.get("stream"))
        problems = tgi_rules(body, stream)
        if problems:
            self.check_contract(problems, "text-generation request (TGI validation)")
            return hf_error(422, problems[0], "validation")
        p = body.get("parameters") or {}
        g = generate([Turn("user", body["inputs"])], max_tokens=p.get("max_new_tokens"),
                     stop=p.get("stop"))
        text = g.text + (g.stopped_by or "")
        finish = "length" if g.finish == "length" else (
            "stop_sequence" if g.stopped_by else "eos_token")
        tokens = [{"id": 100 + i, "text": piece, "logprob": -0.25, "special": False}
                  for i, piece in enumerate(stream_pieces(text))]
        if finish == "eos_token":
            tokens.append({"id": 2, "text": EOS, "logprob": -0.01, "special": True})
        sampled = p.get("do_sample") or "temperature" in p or "top_p" in p
        seed = p.get("seed", 4242) if sampled else None
        if stream:
            events = self._text_stream(tokens, text, finish, count_words(body["inputs"]), seed)
            return Reply(200, events=events, content_type="text/event-stream")
        answer = {"generated_text": text}
        if p.get("details"):
            prefill = [{"id": 200 + i, "text": word, "logprob": None}
                       for i, word in enumerate(body["inputs"].split())]
            answer["details"] = {"finish_reason": finish, "generated_tokens": len(tokens),
                                 "seed": seed, "tokens": tokens,
                                 "prefill": prefill if p.get("decoder_input_details") else []}
        self.check_answer(TEXT_OUTPUT.errors(answer) + TGI.errors(TGI_RESPONSE, answer), "answer")
        return Reply(200, [answer] if serverless else answer)

    def _text_stream(self, tokens, text, finish, input_length, seed):
        for index, token in enumerate(tokens):
            if self._stream_broken(index):
                yield sse(self.stream_error[1])
                return
            last = index == len(tokens) - 1
            event = {"index": index, "token": token,
                     "generated_text": text if last else None,
                     "details": {"finish_reason": finish, "generated_tokens": len(tokens),
                                 "input_length": input_length, "seed": seed} if last else None}
            self.check_answer(TEXT_EVENT.errors(event) + TGI.errors(
                TGI_EVENT, {k: v for k, v in event.items() if v is not None}), "stream event")
            yield sse(event)
