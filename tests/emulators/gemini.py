"""Google Gemini emulator: generateContent, streamGenerateContent?alt=sse and countTokens,
v1beta.

Requests are checked against `GenerateContentRequest` of the converted Gemini contract
(gemini/openapi.json, OAS 3.0; see WIRE-FORMATS §2.3 point 4 for its path-pattern
artifact, which matters only to Prism), plus what the live API enforces beyond that
schema (gemini_rules.py). Every answer body, stream chunk and error body is itself
checked against the contract. Errors use Google's RPC shape (gemini_errors.py).
"""
from __future__ import annotations

import base64
import json
import re

from tests.emulators.contracts import Contract, specs_available
from tests.emulators.gemini_errors import INTERNAL, bad_key, google_error, no_key
from tests.emulators.gemini_rules import (SPEC, api_rules, declarations, text_signature,
                                          unknown_fields)
from tests.emulators.model import (Generation, Tool, Turn, count_prompt, embed_text, generate,
                                   stream_pieces)
from tests.emulators.server import Call, Emulator, Reply

CONTRACT = Contract(SPEC)
REQUEST = CONTRACT.request_body_pointer("/models/{modelsId}:generateContent")
REQUEST_SCHEMA = "#/components/schemas/GenerateContentRequest"   # what REQUEST refers to
RESPONSE = "/components/schemas/GenerateContentResponse"
STATUS = "/components/schemas/Status"
ROUTE = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent|"
                   r"batchEmbedContents|countTokens)$")
COUNT_REQUEST = CONTRACT.request_body_pointer("/models/{modelsId}:countTokens")
COUNT_RESPONSE = "/components/schemas/CountTokensResponse"
EMBED_REQUEST = CONTRACT.request_body_pointer("/models/{modelsId}:batchEmbedContents")
EMBED_RESPONSE = "/components/schemas/BatchEmbedContentsResponse"
EMBED_MODELS = re.compile(r"^(gemini-embedding-[0-9a-z.-]+|text-embedding-\d+)$")
EMBED_DIMENSIONS = 16     # gemini-embedding-001 has 3072; a short vector keeps the tests light
BATCH_LIMIT = 100
MODELS = re.compile(r"^gemini-[a-z0-9.-]+$")   # the model ids this emulator serves
FINISH = {"length": "MAX_TOKENS"}
THOUGHT = "Thinking about the question."


def thought_tokens(config: dict) -> int:
    return len(THOUGHT.split()) if (config.get("thinkingConfig") or {}).get("includeThoughts") \
        else 0


def tool_result_text(response: dict) -> str:
    if set(response) == {"content"} and isinstance(response["content"], str):
        return response["content"]
    return json.dumps(response)


def model_turns(body: dict) -> list[Turn]:
    def text(parts) -> str:
        return " ".join(p["text"] for p in parts or () if "text" in p)

    system = text((body.get("systemInstruction") or {}).get("parts"))
    turns = [Turn("system", system)] if system else []
    for content in body["contents"]:
        parts = content["parts"]
        if content["role"] == "model":
            calls = [{"id": None, "name": p["functionCall"]["name"],
                      "arguments": p["functionCall"].get("args", {})}
                     for p in parts if "functionCall" in p]
            turns.append(Turn("assistant", text(parts), calls))
            continue
        turns += [Turn("tool", tool_result_text(p["functionResponse"]["response"]))
                  for p in parts if "functionResponse" in p]
        if text(parts):
            turns.append(Turn("user", text(parts)))
    return turns


class GeminiEmulator(Emulator):
    """Serves POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse."""

    name = "gemini"
    api_key = "AIzaSyEmulatorGeminiKey0123456789abcdef"
    key_env, base_env = "GEMINI_API_KEY", "GEMINI_API_BASE"

    def reset_knobs(self) -> None:
        self.script: list[str] = []
        self.thinking_tokens = 0
        self.cached_tokens = 0

    def next_answer(self, kind: str) -> None:
        """Script the next answer: "blocked" (prompt blocked, no candidates), "safety" (the
        candidate stopped by SAFETY), "finish:<REASON>" (a failed generation ended with that
        finishReason, no content) or "mid_stream_error" (an error chunk after one chunk)."""
        self.script.append(kind)

    def handle(self, call: Call) -> Reply:
        match = ROUTE.match(call.path)
        if call.method != "POST" or not match:
            return self.error(google_error(404, "NOT_FOUND", f"Requested entity was not found: "
                                                              f"{call.method} {call.path}"))
        if "key" in call.query:
            self.check_contract(["the API key was sent in the URL (?key=)"], "query")
        key = call.headers.get("x-goog-api-key")
        if not key:
            return self.error(no_key())
        if key != self.api_key:
            return self.error(bad_key())
        model, method = match.groups()
        if method == "batchEmbedContents":
            return self.embed(call, model)
        if not MODELS.match(model):
            return self.error(google_error(404, "NOT_FOUND", f"models/{model} is not found for "
                                           f"API version v1beta, or is not supported for "
                                           f"{method}. Call ListModels to see the list of "
                                           f"available models and their supported methods."))
        stream = method == "streamGenerateContent"
        if stream and call.query.get("alt") != ["sse"]:
            self.check_contract([f"alt={call.query.get('alt')} (the proxy reads SSE)"], "query")
        if not isinstance(call.body, dict):
            return self.error(google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload."))
        if method == "countTokens":
            return self.count(call, model)
        problems = self.request_problems(call.body, REQUEST, REQUEST_SCHEMA, model)
        if problems:
            return self.refuse(call, problems)
        return self.answer(call.body, model, stream)

    @staticmethod
    def request_problems(body: dict, pointer: str, schema: str, model: str) -> list[str]:
        """What the contract, proto JSON and the live API refuse in a generate request."""
        problems = CONTRACT.errors(pointer, body)
        if not problems and specs_available():
            problems = unknown_fields(body, {"$ref": schema})
        return problems or api_rules(body, model)

    def refuse(self, call: Call, problems: list[str]) -> Reply:
        self.check_contract(problems, f"request to {call.path}")
        return self.error(google_error(400, "INVALID_ARGUMENT",
                                       "Invalid JSON payload received. " + "; ".join(problems)))

    def count(self, call: Call, model: str) -> Reply:
        """countTokens: `contents` alone, or a whole `generateContentRequest` (never both),
        counted as generateContent counts its prompt."""
        body = call.body
        problems = CONTRACT.errors(COUNT_REQUEST, body)
        if not problems and specs_available():
            problems = unknown_fields(body, {"$ref": "#/components/schemas/CountTokensRequest"})
        prompt = body.get("generateContentRequest")
        if problems:
            return self.refuse(call, problems)
        if prompt is not None:
            if "contents" in body:
                problems.append("contents and generateContentRequest are mutually exclusive")
            if prompt.get("model") != f"models/{model}":
                problems.append(f"generateContentRequest.model must be models/{model}")
        problems = problems or api_rules(prompt or body, model)
        if problems:
            return self.refuse(call, problems)
        answer = {"totalTokens": count_prompt(model_turns(prompt or body))}
        self.check_answer(CONTRACT.errors(COUNT_RESPONSE, answer), "count response")
        return Reply(200, answer)

    def embed(self, call: Call, model: str) -> Reply:
        """batchEmbedContents: one vector per request, at most BATCH_LIMIT requests."""
        if not EMBED_MODELS.match(model):
            return self.error(google_error(404, "NOT_FOUND", f"models/{model} is not found for "
                                           f"API version v1beta, or is not supported for "
                                           f"batchEmbedContents."))
        body = call.body if isinstance(call.body, dict) else {}
        problems = CONTRACT.errors(EMBED_REQUEST, body)
        requests = body.get("requests") or []
        if not problems and specs_available():
            problems = unknown_fields(body, {"$ref": "#/components/schemas/"
                                                     "BatchEmbedContentsRequest"})
        if len(requests) > BATCH_LIMIT:
            problems.append(f"* BatchEmbedContentsRequest.requests: at most {BATCH_LIMIT} "
                            f"requests are allowed per batch")
        problems += [f"requests[{i}].model must be models/{model}"
                     for i, r in enumerate(requests) if r.get("model") != f"models/{model}"]
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return self.error(google_error(400, "INVALID_ARGUMENT", "; ".join(problems)))
        texts = [" ".join(p["text"] for p in r["content"]["parts"]) for r in requests]
        answer = {"embeddings": [{"values": embed_text(
            f"{r.get('taskType', '')}:{text}", r.get("outputDimensionality") or EMBED_DIMENSIONS)}
            for r, text in zip(requests, texts)]}
        self.check_answer(CONTRACT.errors(EMBED_RESPONSE, answer), "embed response")
        return Reply(200, answer)

    def error(self, reply: Reply) -> Reply:
        self.check_answer(CONTRACT.errors(STATUS, reply.body["error"]), "error body")
        return reply

    def answer(self, body: dict, model: str, stream: bool) -> Reply:
        number = next(self._ids)
        config = body.get("generationConfig") or {}
        tools = [Tool(d["name"], d.get("parametersJsonSchema") or {}) for d in declarations(body)]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        allowed = calling.get("allowedFunctionNames") or []
        choice = {"NONE": "none", "ANY": allowed[0] if len(allowed) == 1 else "required"}.get(
            calling.get("mode"))
        turns = model_turns(body)
        generations = [generate(turns, tools, choice, config.get("maxOutputTokens"),
                                config.get("stopSequences"), number)
                       for _ in range(config.get("candidateCount") or 1)]
        kind = self.script.pop(0) if self.script else None
        head = {"modelVersion": model, "responseId": f"emu-gemini-{number:04d}"}
        if kind == "blocked":
            frames = [{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                 "blocked": True}]}, "usageMetadata": self.usage(generations, False), **head}]
        elif stream:
            frames = self.chunks(generations, config, head, kind, model)
        else:
            frames = [{"candidates": [self.candidate(g, i, config, kind, model)
                                      for i, g in enumerate(generations)],
                       "usageMetadata": self.usage(generations, True, thought_tokens(config)),
                       **head}]
        for frame in frames:
            if "error" not in frame:
                self.check_answer(CONTRACT.errors(RESPONSE, frame), "answer")
        if not stream:
            return Reply(200, frames[0])
        return Reply(200, events=(f"data: {json.dumps(f)}\r\n\r\n".encode() for f in frames),
                     content_type="text/event-stream")

    def usage(self, generations: list[Generation], answered: bool, thoughts: int = 0) -> dict:
        prompt = generations[0].prompt_tokens
        usage = {"promptTokenCount": prompt, "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": prompt}]}
        total = prompt
        if answered:
            usage["candidatesTokenCount"] = sum(g.completion_tokens for g in generations)
            total += usage["candidatesTokenCount"]
            if self.thinking_tokens or thoughts:
                usage["thoughtsTokenCount"] = self.thinking_tokens or thoughts
                total += usage["thoughtsTokenCount"]
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        usage["totalTokenCount"] = total
        return usage

    def candidate(self, g: Generation, index: int, config: dict, kind: str | None,
                  model: str) -> dict:
        if kind == "safety":
            return {"finishReason": "SAFETY", "index": index, "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}
        if kind and kind.startswith("finish:"):    # a failed generation: no content
            return {"finishReason": kind[len("finish:"):], "index": index}
        parts = [{"text": g.text}] if g.text else []
        if parts and not g.tool_call and model.startswith("gemini-3"):
            parts[-1]["thoughtSignature"] = text_signature(g.text)
        if (config.get("thinkingConfig") or {}).get("includeThoughts"):
            parts.insert(0, {"text": THOUGHT, "thought": True})
        if g.tool_call:
            signature = base64.b64encode(f"sig:{g.tool_call['id']}".encode()).decode()
            parts.append({"functionCall": {"name": g.tool_call["name"],
                                           "args": g.tool_call["arguments"]},
                          "thoughtSignature": signature})
        candidate = {"content": {"role": "model", "parts": parts},
                     "finishReason": FINISH.get(g.finish, "STOP"), "index": index}
        if config.get("responseLogprobs"):
            candidate["logprobsResult"] = self.logprobs(stream_pieces(g.text),
                                                        config.get("logprobs") or 0)
        return candidate

    @staticmethod
    def logprobs(pieces: list[str], top: int) -> dict:
        """Every chosen token at -0.25 (Gemini leaves out a zero log probability)."""
        chosen = [{"token": p, "tokenId": 1000 + i, "logProbability": -0.25}
                  for i, p in enumerate(pieces)]
        alternatives = [{"candidates": [c] + [{"token": f"alt{k}", "tokenId": k,
                                                "logProbability": -2.0 - k}
                                               for k in range(1, top)]} for c in chosen]
        return {"chosenCandidates": chosen, "topCandidates": alternatives,
                "logProbabilitySum": -0.25 * len(chosen)}

    def chunks(self, generations: list[Generation], config: dict, head: dict,
               kind: str | None, model: str) -> list[dict]:
        """The SSE chunks: text piece by piece, a text signature on a last empty text part,
        a functionCall whole, finishReason on each candidate's last chunk, interim usage
        with the prompt count, full usage at the end."""
        frames = []
        for index, g in enumerate(generations):
            whole = self.candidate(g, index, config, kind, model)

            def frame(candidate: dict) -> dict:
                if index:   # proto3 JSON leaves out a zero index
                    candidate["index"] = index
                return {"candidates": [candidate], "usageMetadata": {
                    "promptTokenCount": g.prompt_tokens, "totalTokenCount": g.prompt_tokens},
                    **head}

            if kind and kind.startswith("finish:"):
                frames.append(frame({k: v for k, v in whole.items() if k != "index"}))
                continue
            parts = [p for p in (whole.get("content") or {}).get("parts", ()) if p.get("thought")]
            parts += [{"text": p} for p in stream_pieces(g.text)] or [{"text": ""}]
            parts += [{"text": "", "thoughtSignature": p["thoughtSignature"]}
                      for p in (whole.get("content") or {}).get("parts", ())
                      if "text" in p and p.get("thoughtSignature")]
            parts += [p for p in (whole.get("content") or {}).get("parts", ())
                      if "functionCall" in p]
            for position, part in enumerate(parts):
                candidate = {"content": {"role": "model", "parts": [part]}}
                if config.get("responseLogprobs") and part.get("text"):
                    candidate["logprobsResult"] = self.logprobs([part["text"]],
                                                                config.get("logprobs") or 0)
                if position == len(parts) - 1 and kind != "safety":
                    candidate["finishReason"] = whole["finishReason"]
                frames.append(frame(candidate))
            if kind == "safety":
                frames.append(frame({k: v for k, v in whole.items() if k != "index"}))
        frames[-1]["usageMetadata"] = self.usage(generations, True, thought_tokens(config))
        if kind == "mid_stream_error":
            frames = frames[:1] + [{"error": {"code": 500, "message": INTERNAL,
                                              "status": "INTERNAL"}}]
        return frames
