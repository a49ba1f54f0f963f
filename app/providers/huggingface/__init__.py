"""Hugging Face: `huggingface/<owner>/<repo>`, or a bare `<owner>/<repo>` nothing else claims.

Each model has a task, from the deployment's `params.task`, else the registry's `task`,
else "chat" (the router serves most Hub models that way today):
- chat: OpenAI's chat API, `POST {root}/v1/chat/completions` with `model: "<owner>/<repo>"`
  (chat.py holds the few differences from OpenAI's body).
- text-generation: the conversation as one prompt, TGI's body (textgen.py).

Where requests go: without an `api_base` in the deployment's config, to the Hugging Face
router at HUGGINGFACE_API_BASE (default https://router.huggingface.co; text-generation
uses its serverless route `/hf-inference/models/<owner>/<repo>`). An `api_base` in the
deployment's config names the model's own server, a TGI server or an Inference Endpoint:
text-generation then uses its `/generate` and `/generate_stream`. A trailing `/v1` on
either base is ignored.

Keys: HUGGINGFACE_API_KEY, else HF_TOKEN, sent as a Bearer token.
Errors are `{"error": "...", "error_type"?}` or `{"error": ["...", ...]}`. A 503 with
`estimated_time` means the model is still loading: the same request is sent again after
that long (at most LOADING_MAX_WAIT s at a time), within the request's timeout. The
`x-wait-for-model` header is not sent, so the server never holds a connection longer than
the proxy's own deadline allows. A 429's retry hint is Retry-After, or the reset time
`t=` of HF's `RateLimit` header.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from urllib.parse import quote

from app.errors import InvalidRequestError, ProxyError, UpstreamError
from app.providers import context_length, legacy_functions
from app.providers.base import (FollowUp, StreamTranslator, Target, UpstreamRequest,
                                UpstreamResponse, params_outside)
from app.providers.upstream_errors import retry_after_seconds, upstream_error
from app.providers.embedding_format import embedding_list, input_texts
from app.providers.huggingface import chat, textgen
from app.providers.openai import OpenAIProvider

ROUTER = "https://router.huggingface.co"
TASKS = {"chat": chat, "text-generation": textgen}   # each: SUPPORTED, OUT_OF_RANGE
LOADING_MIN_WAIT = 0.25
LOADING_MAX_WAIT = 10.0
_RATELIMIT_RESET = re.compile(r";\s*t=(\d+(?:\.\d+)?)")


class HuggingFaceProvider(OpenAIProvider):
    name = "huggingface"
    context_length_wording = context_length.HUGGINGFACE
    key_env = ("HUGGINGFACE_API_KEY", "HF_TOKEN")
    base_env = "HUGGINGFACE_API_BASE"
    default_base = ROUTER

    def unsupported_params_for(self, body: Mapping[str, Any], target: Target) -> list[str]:
        rules = TASKS[task(target)]
        out_of_range = [key for key, outside in rules.OUT_OF_RANGE.items()
                        if body.get(key) is not None and outside(body[key])]
        return sorted(set(params_outside(body, rules.SUPPORTED)) | set(out_of_range))

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        if task(target) == "chat":
            return super().build_request(body, target)
        return textgen.build_request(body, target, self.headers(target), root(target),
                                     dedicated(target))

    def url(self, target: Target, path: str = "chat/completions") -> str:
        return f"{root(target)}/v1/{path}"

    # -- embeddings: the router's feature-extraction pipeline, or a TEI server's /embed ------
    embedding_batch_size = 32       # TEI's default max-client-batch-size
    embedding_batch_tokens = None
    embeds_token_ids = False

    def build_embedding_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        if body.get("dimensions") is not None:
            raise InvalidRequestError(f"model {target.model_group!r} (Hugging Face) cannot "
                                      f"shorten its embeddings: remove dimensions",
                                      param="dimensions", code="unsupported_params")
        if dedicated(target):
            url = f"{root(target)}/embed"
        else:
            url = (f"{root(target)}/hf-inference/models/"
                   f"{quote(target.upstream_model, safe='/')}/pipeline/feature-extraction")
        return UpstreamRequest("POST", url, self.headers(target),
                               {"inputs": input_texts(body["input"])})

    def parse_embedding_response(self, response: UpstreamResponse, body: dict[str, Any],
                                 target: Target) -> dict:
        vectors = response.payload
        if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
            raise ValueError("the answer is not a list of vectors")
        return embedding_list(target.upstream_model, vectors, None)

    # -- text completions: text-generation models take the prompt as it is -------------------
    takes_prompt_lists = False
    def speaks_text_completion(self, target: Target) -> bool:
        return task(target) == "text-generation"

    def build_text_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        return textgen.build_request(body, target, self.headers(target), root(target),
                                     dedicated(target), textgen.text_prompt(body, target))

    def parse_text_response(self, response: UpstreamResponse, body: dict[str, Any],
                            target: Target) -> dict | FollowUp:
        return textgen.completion(response.payload, body, target)

    def text_stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return textgen.TextGenStreamTranslator(self, body.get("stop"))

    def wire_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return chat.wire_body(body, target.upstream_model)

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        if task(target) == "chat":
            return chat.normalise(super().parse_response(response, body, target), body)
        return textgen.completion(response.payload, body, target)

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        if task(target) == "chat":
            return legacy_functions.stream(chat.ChatStreamTranslator(self, body.get("stop")), body)
        return textgen.TextGenStreamTranslator(self, body.get("stop"))

    def error_message(self, payload: Any) -> str | None:
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, list):
            return "; ".join(map(str, error))
        return super().error_message(payload)

    def error_code(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("error_type"), str):
            return payload["error_type"]
        return super().error_code(payload)

    def upstream_error(self, status: int, payload: Any,
                       headers: Mapping[str, str]) -> UpstreamError:
        return upstream_error(self.name, status, self.error_message(payload),
                              self.error_code(payload),
                              retry_after_seconds(headers) or _ratelimit_reset(headers))

    def retry_after_error(self, status: int, payload: Any,
                          request: UpstreamRequest) -> FollowUp | None:
        estimate = payload.get("estimated_time") if isinstance(payload, dict) else None
        if status != 503 or isinstance(estimate, bool) or not isinstance(estimate, (int, float)):
            return None
        return FollowUp(request, min(max(float(estimate), LOADING_MIN_WAIT), LOADING_MAX_WAIT))


def task(target: Target) -> str:
    name = target.settings.get("task") or target.info.get("task") or "chat"
    if name not in TASKS:
        raise ProxyError(f"model {target.model_group!r} is configured with task {name!r}; "
                         f"Hugging Face tasks are: {', '.join(TASKS)}",
                         code="invalid_deployment_config")
    return name


def root(target: Target) -> str:
    return target.api_base.rstrip("/").removesuffix("/v1")


def dedicated(target: Target) -> bool:
    """True when the deployment names its own server (TGI / Inference Endpoint)."""
    return bool(target.settings.get("api_base")) and root(target) != ROUTER


def _ratelimit_reset(headers: Mapping[str, str]) -> float | None:
    match = _RATELIMIT_RESET.search(headers.get("ratelimit") or "")
    return float(match.group(1)) if match else None
