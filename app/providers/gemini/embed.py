"""Gemini's batchEmbedContents (`POST .../models/{model}:batchEmbedContents`): one
EmbedContentRequest per text, with `taskType` and `outputDimensionality`."""
from __future__ import annotations

from typing import Any

from app.errors import InvalidRequestError
from app.providers.base import Target, UpstreamRequest, UpstreamResponse
from app.providers.embedding_format import embedding_list, input_texts

# The proxy's `input_type` (Cohere's names, which most clients know) -> Gemini's taskType;
# Gemini's own names are accepted as they are.
TASK_TYPES = {"search_document": "RETRIEVAL_DOCUMENT", "search_query": "RETRIEVAL_QUERY",
              "classification": "CLASSIFICATION", "clustering": "CLUSTERING"}
GEMINI_TASKS = ("RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY", "CLASSIFICATION",
                "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION", "CODE_RETRIEVAL_QUERY")


def task_type(body: dict[str, Any]) -> str | None:
    value = body.get("input_type")
    if value is None or value in GEMINI_TASKS:
        return value
    if value not in TASK_TYPES:
        raise InvalidRequestError(f"Invalid parameter 'input_type': {value!r} is not one of "
                                  f"{', '.join([*TASK_TYPES, *GEMINI_TASKS])}.",
                                  param="input_type", code="invalid_value")
    return TASK_TYPES[value]


def build_request(body: dict[str, Any], target: Target, url: str,
                  headers: dict[str, str]) -> UpstreamRequest:
    model = f"models/{target.upstream_model.removeprefix('models/')}"
    extra: dict[str, Any] = {}
    if (task := task_type(body)) is not None:
        extra["taskType"] = task
    if body.get("dimensions") is not None:
        extra["outputDimensionality"] = body["dimensions"]
    requests = [{"model": model, "content": {"parts": [{"text": text}]}, **extra}
                for text in input_texts(body["input"])]
    return UpstreamRequest("POST", url, headers, {"requests": requests})


def parse_response(response: UpstreamResponse, target: Target) -> dict:
    payload = response.payload
    embeddings = payload.get("embeddings") if isinstance(payload, dict) else None
    if not isinstance(embeddings, list):
        raise ValueError("the answer has no embeddings list")
    tokens = (payload.get("usageMetadata") or {}).get("promptTokenCount")
    return embedding_list(target.upstream_model, [e["values"] for e in embeddings], tokens)
