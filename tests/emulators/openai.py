"""OpenAI and Azure OpenAI emulators (also the OpenAI-compatible family's).

Requests are checked against OpenAI's and Azure's official OpenAPI contracts.
"""
from __future__ import annotations

import json
import time

from tests.emulators.contracts import Contract
from tests.emulators.model import Tool, Turn, generate, stream_pieces
from tests.emulators.openai_responses import ResponsesAPI
from tests.emulators.operations import (embedding_reply, fim_reply, fim_stream, stream_or_body,
                                        text_generations, text_reply, text_stream)
from tests.emulators.server import Call, Emulator, Reply, sse

OPENAI_CONTRACT = Contract("openai/openapi.yaml")
AZURE_CONTRACT = Contract("azure-openai/inference-2024-10-21.json")
AZURE_PATH = "/deployments/{deployment-id}/chat/completions"
MISTRAL_CONTRACT = Contract("mistral/openapi.yaml")
EMBEDDING_RESPONSE = "/components/schemas/CreateEmbeddingResponse"
COMPLETION_RESPONSE = "/components/schemas/CreateCompletionResponse"


def openai_error(status: int, message: str, type_: str, code: str | None = None,
                 headers: dict | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": type_, "param": None,
                                    "code": code}}, headers or {})


def _turns(messages: list[dict]) -> list[Turn]:
    turns = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if p.get("type") == "text")
        calls = [{"id": c["id"], "name": c["function"]["name"],
                  "arguments": json.loads(c["function"]["arguments"] or "{}")}
                 for c in m.get("tool_calls") or ()]
        turns.append(Turn(m["role"], content or "", calls, m.get("tool_call_id")))
    return turns


class OpenAIEmulator(Emulator):
    """Serves POST /v1/chat/completions like api.openai.com."""

    name = "openai"
    contract = OPENAI_CONTRACT
    api_key = "sk-test-openai-key-0123456789"
    key_env, base_env, base_path = "OPENAI_API_KEY", "OPENAI_API_BASE", "/v1"
    paths = ("/v1/chat/completions", "/chat/completions")
    responses_prefix = "/v1/responses"

    def reset_knobs(self) -> None:
        self.responses = ResponsesAPI(self)

    def authorised(self, call: Call) -> bool:
        return call.headers.get("authorization") == f"Bearer {self.api_key}"

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer("/chat/completions")

    def route(self, call: Call) -> str | None:
        return call.body.get("model") if call.path in self.paths else None

    def handle(self, call: Call) -> Reply:
        if call.path.startswith(self.responses_prefix):
            if not self.authorised(call):
                return openai_error(401, "Incorrect API key provided.", "invalid_request_error",
                                    "invalid_api_key")
            return self.responses.handle(call, openai_error)
        if call.method != "POST" or call.body is None:
            return openai_error(404, f"Unknown request URL: {call.method} {call.path}",
                                "invalid_request_error", "unknown_url")
        operation = self.operation(call)
        if operation is not None:
            return self.serve_operation(call, *operation)
        model = self.route(call)
        if model is None:
            return openai_error(404, f"Unknown request URL: POST {call.path}",
                                "invalid_request_error", "unknown_url")
        if not self.authorised(call):
            return openai_error(401, "Incorrect API key provided.", "invalid_request_error",
                                "invalid_api_key")
        problems = self.contract.errors(self.contract_pointer(), call.body)
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return openai_error(400, "contract violation: " + "; ".join(problems),
                                "invalid_request_error")
        return self.complete(call.body, model)

    # -- embeddings and text completions (tests/emulators/operations.py) --------------------
    OPERATIONS = {"/v1/embeddings": "embeddings", "/embeddings": "embeddings",
                  "/v1/completions": "completions", "/completions": "completions",
                  "/v1/fim/completions": "fim", "/beta/completions": "deepseek-fim"}

    def operation(self, call: Call) -> tuple[str, str] | None:
        """(operation, model) for a route other than chat, else None."""
        name = self.OPERATIONS.get(call.path)
        return None if name is None else (name, call.body.get("model"))

    def operation_problems(self, name: str, body: dict) -> list[str]:
        if name == "fim":
            return MISTRAL_CONTRACT.errors(MISTRAL_CONTRACT.request_body_pointer(
                "/v1/fim/completions"), body)
        if name == "deepseek-fim":   # no published schema: the documented fields
            allowed = {"model", "prompt", "suffix", "max_tokens", "temperature", "top_p",
                       "stop", "stream", "stream_options", "echo", "logprobs",
                       "frequency_penalty", "presence_penalty"}
            return [f"unknown field {k}" for k in body if k not in allowed] + (
                [] if isinstance(body.get("prompt"), str) else ["prompt must be a string"])
        path = "/completions" if name == "completions" else f"/{name}"
        return self.contract.errors(self.operation_pointer(path), body)

    def operation_pointer(self, path: str) -> str:
        return self.contract.request_body_pointer(path)

    def serve_operation(self, call: Call, name: str, model: str) -> Reply:
        if not self.authorised(call):
            return openai_error(401, "Incorrect API key provided.", "invalid_request_error",
                                "invalid_api_key")
        problems = self.operation_problems(name, call.body)
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return openai_error(400, "contract violation: " + "; ".join(problems),
                                "invalid_request_error")
        body = call.body
        if name == "embeddings":
            answer = embedding_reply(body, model, body.get("dimensions")
                                     or body.get("output_dimension"))
            self.check_answer(OPENAI_CONTRACT.errors(EMBEDDING_RESPONSE, answer), "embeddings")
            return Reply(200, answer)
        generations = text_generations(body)
        if name == "fim":
            return stream_or_body(body, fim_reply(body, model, generations[0]),
                                  fim_stream(body, model, generations[0]))
        answer = text_reply(body, model, generations)
        self.check_answer(OPENAI_CONTRACT.errors(COMPLETION_RESPONSE, answer), "completion")
        return stream_or_body(body, answer, text_stream(body, model, generations))

    def complete(self, body: dict, model: str) -> Reply:
        legacy = bool(body.get("functions")) and not body.get("tools")
        specs = [t["function"] for t in body.get("tools") or ()] + list(body.get("functions") or ())
        tools = [Tool(f["name"], f.get("parameters") or {}) for f in specs]
        choice = body.get("tool_choice", body.get("function_call"))
        if isinstance(choice, dict):
            choice = (choice.get("function") or choice)["name"]
        stop = body.get("stop")
        stop = [stop] if isinstance(stop, str) else stop
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        turns = _turns(body["messages"])
        generations = [generate(turns, tools, choice, limit, stop, next(self._ids))
                       for _ in range(body.get("n") or 1)]
        created = int(time.time())
        response_id = f"chatcmpl-emu{next(self._ids)}"
        if legacy:   # OpenAI answers a `functions` request in the legacy shape
            for g in generations:
                g.finish = "function_call" if g.tool_call else g.finish
        if body.get("stream"):
            return Reply(200, events=self._stream(body, model, generations, response_id, created,
                                                  legacy),
                         content_type="text/event-stream")
        choices = [{"index": i, "message": self._message(g, legacy), "logprobs": None,
                    "finish_reason": g.finish} for i, g in enumerate(generations)]
        usage = {"prompt_tokens": generations[0].prompt_tokens,
                 "completion_tokens": sum(g.completion_tokens for g in generations)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return Reply(200, {"id": response_id, "object": "chat.completion", "created": created,
                           "model": model, "system_fingerprint": "fp_emulator",
                           "choices": choices, "usage": usage})

    @staticmethod
    def _message(g, legacy: bool = False) -> dict:
        if g.tool_call and legacy:
            return {"role": "assistant", "content": None, "refusal": None, "function_call": {
                "name": g.tool_call["name"], "arguments": json.dumps(g.tool_call["arguments"])}}
        if g.tool_call:
            return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
                "id": g.tool_call["id"], "type": "function",
                "function": {"name": g.tool_call["name"],
                             "arguments": json.dumps(g.tool_call["arguments"])}}]}
        return {"role": "assistant", "content": g.text, "refusal": None}

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        """The extra chunk that carries a stream's usage, or None: OpenAI sends one (choices
        empty) when asked with stream_options.include_usage; other servers differ."""
        if (body.get("stream_options") or {}).get("include_usage"):
            return {"choices": [], "usage": usage}
        return None

    def _stream(self, body, model, generations, response_id, created, legacy=False):
        include_usage = (body.get("stream_options") or {}).get("include_usage")

        def chunk(choices, usage=None):
            data = {"id": response_id, "object": "chat.completion.chunk", "created": created,
                    "model": model, "system_fingerprint": "fp_emulator", "choices": choices}
            if include_usage:
                data["usage"] = usage
            return sse(data)

        for i, g in enumerate(generations):
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                          "logprobs": None, "finish_reason": None}])
            if g.tool_call and legacy:
                args = json.dumps(g.tool_call["arguments"])
                yield chunk([{"index": i, "delta": {"function_call": {
                    "name": g.tool_call["name"], "arguments": ""}},
                    "logprobs": None, "finish_reason": None}])
                yield chunk([{"index": i, "delta": {"function_call": {"arguments": args}},
                              "logprobs": None, "finish_reason": None}])
            elif g.tool_call:
                args = json.dumps(g.tool_call["arguments"])
                yield chunk([{"index": i, "delta": {"tool_calls": [{
                    "index": 0, "id": g.tool_call["id"], "type": "function",
                    "function": {"name": g.tool_call["name"], "arguments": ""}}]},
                    "logprobs": None, "finish_reason": None}])
                for piece in (args[:len(args) // 2], args[len(args) // 2:]):
                    yield chunk([{"index": i, "delta": {"tool_calls": [{
                        "index": 0, "function": {"arguments": piece}}]},
                        "logprobs": None, "finish_reason": None}])
            for piece in stream_pieces(g.text):
                yield chunk([{"index": i, "delta": {"content": piece}, "logprobs": None,
                              "finish_reason": None}])
            yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": g.finish}])
        prompt = generations[0].prompt_tokens
        completion = sum(g.completion_tokens for g in generations)
        last = self.stream_usage(body, {"prompt_tokens": prompt, "completion_tokens": completion,
                                        "total_tokens": prompt + completion})
        if last is not None:
            yield sse({"id": response_id, "object": "chat.completion.chunk", "created": created,
                       "model": model, "system_fingerprint": "fp_emulator", **last})
        yield b"data: [DONE]\n\n"


class AzureEmulator(OpenAIEmulator):
    """Serves POST /openai/deployments/{id}/chat/completions?api-version=... like Azure."""

    name = "azure"
    contract = AZURE_CONTRACT
    api_key = "azure-test-key-0123456789abcdef"
    key_env, base_env, base_path = "AZURE_API_KEY", "AZURE_API_BASE", ""
    api_version = "2024-10-21"
    responses_prefix = "/openai/v1/responses"  # Azure's v1 API: no api-version

    def reset_knobs(self) -> None:
        super().reset_knobs()
        self.filter_next = False    # the next answer's output is withheld by the content filter

    def proxy_env(self) -> dict[str, str]:
        return {**super().proxy_env(), "AZURE_API_VERSION": self.api_version}

    def complete(self, body: dict, model: str) -> Reply:
        """OpenAI's answer plus Azure's content filter annotations (per choice and prompt)."""
        reply = super().complete(body, model)
        if reply.events is not None:
            return reply
        filtered, self.filter_next = self.filter_next, False
        reply.body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": self.filter_results(False)}]
        for choice in reply.body["choices"]:
            choice["content_filter_results"] = self.filter_results(filtered)
            if filtered:
                choice["message"]["content"], choice["finish_reason"] = None, "content_filter"
        return reply

    @staticmethod
    def filter_results(violence: bool) -> dict:
        safe = {"filtered": False, "severity": "safe"}
        return {"hate": safe, "self_harm": safe, "sexual": safe,
                "violence": {"filtered": True, "severity": "high"} if violence else safe}

    def authorised(self, call: Call) -> bool:
        return call.headers.get("api-key") == self.api_key

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer(AZURE_PATH)

    def operation(self, call: Call) -> tuple[str, str] | None:
        prefix = "/openai/deployments/"
        for name in ("embeddings", "completions"):
            suffix = f"/{name}"
            if call.path.startswith(prefix) and call.path.endswith(suffix) \
                    and not call.path.endswith("/chat/completions"):
                if call.query.get("api-version") != [self.api_version]:
                    self.check_contract([f"api-version {call.query.get('api-version')}"], "query")
                    return None
                return name, call.path[len(prefix):-len(suffix)]
        return None

    def operation_pointer(self, path: str) -> str:
        return self.contract.request_body_pointer(f"/deployments/{{deployment-id}}{path}")

    def route(self, call: Call) -> str | None:
        prefix, suffix = "/openai/deployments/", "/chat/completions"
        if not (call.path.startswith(prefix) and call.path.endswith(suffix)):
            return None
        if call.query.get("api-version") != [self.api_version]:
            self.check_contract([f"api-version {call.query.get('api-version')}"], "query")
            return None
        return call.path[len(prefix):-len(suffix)]
