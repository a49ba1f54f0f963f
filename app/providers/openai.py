"""OpenAI, and every server that speaks OpenAI's chat API.

Requests pass through nearly unchanged (unknown fields included, for forward
compatibility); answers are normalised so that every field a client reads is present.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.jsonfast import loads
from app.providers import legacy_functions
from app.providers.base import (OPENAI_PARAMS, FollowUp, NativeRequest, Provider,
                                StreamTranslator, Target, UpstreamRequest, UpstreamResponse,
                                chat_completion, token_count)
from app.providers.embedding_format import as_floats, embedding_list, input_texts
from app.providers.openai_responses import (ResponsesStreamReader, completion_from_response,
                                            count_body, native_request, speaks_responses)


class OpenAIProvider(Provider):
    name = "openai"
    key_env = ("OPENAI_API_KEY",)
    base_env = "OPENAI_API_BASE"
    default_base = "https://api.openai.com/v1"
    self_hosted_without_key = True  # vLLM, Ollama, LM Studio, llama.cpp speak this API
    native_apis = frozenset({"responses"})  # see `speaks`: OpenAI's own API, or declared
    # Renames a compatible server wants (e.g. Mistral's `random_seed`), applied on the way out.
    renamed_params: dict[str, str] = {}
    # Streams ask for the usage chunk whatever the client asked (the service strips it when
    # the client did not), so that the bill holds the provider's own counts.
    asks_stream_usage = True

    def headers(self, target: Target) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        return headers

    def url(self, target: Target, path: str = "chat/completions") -> str:
        return f"{target.api_base.rstrip('/')}/{path}"

    def wire_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        """The body as sent: unknown fields kept, OpenAI params set to null left out (the
        contract rejects null for several of them, and null means the default anyway)."""
        wire = {self.renamed_params.get(k, k): v for k, v in body.items()
                if v is not None or k not in OPENAI_PARAMS}
        wire["model"] = target.upstream_model
        if not self.asks_stream_usage:
            wire.pop("stream_options", None)   # a server without it reports usage its own way
        elif wire.get("stream"):
            wire["stream_options"] = {**(wire.get("stream_options") or {}), "include_usage": True}
        return wire

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url(target), self.headers(target),
                               self.wire_body(body, target), stream=bool(body.get("stream")))

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        payload = response.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise ValueError("the answer has no choices list")
        result = chat_completion(payload.get("model") or target.upstream_model,
                                 [normalise_choice(c, i) for i, c in enumerate(payload["choices"])],
                                 payload.get("usage"), payload.get("id"), payload.get("created"))
        for extra in ("system_fingerprint", "service_tier", "prompt_filter_results"):
            if payload.get(extra) is not None:
                result[extra] = payload[extra]
        return legacy_functions.answer(result, body)

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return legacy_functions.stream(OpenAIStreamTranslator(self), body)

    # -- embeddings --------------------------------------------------------------------------
    embedding_batch_size = 2048
    embedding_batch_tokens = 300_000
    embeds_token_ids = True   # the API takes token-id inputs as they are
    embedding_renames: dict[str, str] = {}
    embedding_fields = ("dimensions", "user")

    def build_embedding_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        inputs = body["input"] if self.embeds_token_ids else input_texts(body["input"])
        wire = {"model": target.upstream_model, "input": inputs, "encoding_format": "float"}
        for name in self.embedding_fields:
            if body.get(name) is not None:
                wire[self.embedding_renames.get(name, name)] = body[name]
        return UpstreamRequest("POST", self.url(target, "embeddings"), self.headers(target),
                               self.strip_model(wire))

    def strip_model(self, wire: dict[str, Any]) -> dict[str, Any]:
        """The body as sent to a route whose URL does not name the model (Azure's does)."""
        return wire

    def parse_embedding_response(self, response: UpstreamResponse, body: dict[str, Any],
                                 target: Target) -> dict:
        payload = response.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise ValueError("the answer has no data list")
        items = sorted(payload["data"], key=lambda item: item.get("index", 0))
        usage = payload.get("usage") or {}
        return embedding_list(payload.get("model") or target.upstream_model,
                              [as_floats(item.get("embedding")) for item in items],
                              usage.get("prompt_tokens"))

    # -- text completions (legacy /completions) ----------------------------------------------
    completions_path = "completions"
    takes_prompt_lists = True

    def speaks_text_completion(self, target: Target) -> bool:
        """Completion models (registry or config `mode: completion`), and any model on a
        server of the deployment's own (vLLM, Ollama, LM Studio serve /v1/completions)."""
        mode = target.settings.get("mode") or target.info.get("mode")
        return mode == "completion" or (mode is None and self.self_hosted_without_key
                                        and bool(target.settings.get("api_base")))

    # Fields the text route does not take (the chat form of the prompt; and, for a FIM route
    # that always ends its stream with usage, the stream_options asking for it).
    text_drops: tuple[str, ...] = ("messages",)

    def build_text_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        wire = {k: v for k, v in self.wire_body(body, target).items() if k not in self.text_drops}
        return UpstreamRequest("POST", self.url(target, self.completions_path),
                               self.headers(target), wire, stream=bool(body.get("stream")))

    def parse_text_response(self, response: UpstreamResponse, body: dict[str, Any],
                            target: Target) -> dict | FollowUp:
        payload = response.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise ValueError("the answer has no choices list")
        choices = [text_choice(c, i) for i, c in enumerate(payload["choices"])]
        return chat_completion(payload.get("model") or target.upstream_model, choices,
                               payload.get("usage"), payload.get("id"), payload.get("created"))

    def text_stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return TextStreamTranslator(self)

    # -- the Responses API, passed through (app/providers/openai_responses.py) -------------
    def official(self, target: Target) -> bool:
        """OpenAI's own API, not a compatible server a deployment points at."""
        return self.name == "openai" and "api_base" not in target.settings

    def speaks(self, api: str, target: Target) -> bool:
        return api == "responses" and speaks_responses(target, self.official(target))

    def counts_prompts(self, target: Target) -> bool:
        return self.official(target)

    def build_count_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url(target, "responses/input_tokens"),
                               self.headers(target), count_body(body, target.upstream_model))

    def parse_count_response(self, response: UpstreamResponse, body: dict[str, Any],
                             target: Target) -> int:
        return token_count(response.payload, "input_tokens")

    def responses_url(self, target: Target) -> str:
        return f"{target.api_base.rstrip('/')}/responses"

    def build_native_request(self, native: NativeRequest, target: Target) -> UpstreamRequest:
        return native_request(native, target, self.responses_url(target), self.headers(target),
                              target.upstream_model)

    def parse_native_response(self, api: str, response: UpstreamResponse,
                              target: Target) -> dict:
        return completion_from_response(response.payload, target.upstream_model)

    def native_stream_translator(self, api: str, target: Target) -> StreamTranslator:
        return ResponsesStreamReader(lambda status, payload: self.upstream_error(
            status, payload, {}))


def normalise_choice(choice: Any, position: int) -> dict:
    """A choice with index, message {role, content, ...} and finish_reason always present; every
    other field the upstream sent (Azure's content_filter_results, logprobs) is kept."""
    if not isinstance(choice, dict):
        raise ValueError("a choice is not an object")
    message = dict(choice.get("message") or {})
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    return {**choice, "index": choice.get("index", position), "message": message,
            "finish_reason": choice.get("finish_reason")}


def text_choice(choice: Any, position: int) -> dict:
    """A /completions choice ({text, index, logprobs, finish_reason}) as a chat choice; a
    chat-shaped choice (Mistral's FIM answers) is kept as it is."""
    if not isinstance(choice, dict):
        raise ValueError("a choice is not an object")
    if "message" in choice:
        return normalise_choice(choice, position)
    text = choice.get("text")
    if not isinstance(text, str):
        raise ValueError("a choice has no text")
    return {"index": choice.get("index", position), "logprobs": choice.get("logprobs"),
            "message": {"role": "assistant", "content": text},
            "finish_reason": choice.get("finish_reason")}


class OpenAIStreamTranslator(StreamTranslator):
    """OpenAI-style SSE: each `data:` is already a chunk; keep its choices and usage."""

    def __init__(self, provider: Provider):
        self.provider = provider

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        if data.strip() == "[DONE]":
            return ()
        chunk = loads(data)
        if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
            raise self.provider.upstream_error(502, chunk, {})
        fragment = {"choices": self.choices(chunk)}
        usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")  # Groq's place
        if usage:
            fragment["usage"] = usage
        return (fragment,)

    @staticmethod
    def choices(chunk: dict) -> list:
        return chunk.get("choices") or []


class TextStreamTranslator(OpenAIStreamTranslator):
    """/completions SSE chunks (choices[].text) as chat fragments (delta.content); a chat
    chunk (Mistral's FIM stream) passes as it is."""

    @staticmethod
    def choices(chunk: dict) -> list:
        choices = []
        for position, choice in enumerate(chunk.get("choices") or ()):
            delta = choice.get("delta")
            text = choice.get("text") if delta is None else delta.get("content")
            choices.append({"index": choice.get("index", position),
                            "delta": {"content": text} if text else {},
                            "finish_reason": choice.get("finish_reason")})
        return choices
