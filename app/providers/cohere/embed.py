"""Cohere's v2 embed API (`POST {base}/v2/embed`): texts, `input_type`, float embeddings."""
from __future__ import annotations

from typing import Any

from app.errors import InvalidRequestError
from app.providers.base import Target, UpstreamRequest, UpstreamResponse
from app.providers.embedding_format import embedding_list, input_texts

INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
# Texts stored for retrieval are what most embedding calls carry; queries say so.
DEFAULT_INPUT_TYPE = "search_document"


def input_type(body: dict[str, Any]) -> str:
    value = body.get("input_type") or DEFAULT_INPUT_TYPE
    if value not in INPUT_TYPES:
        raise InvalidRequestError(f"Invalid parameter 'input_type': {value!r} is not one of "
                                  f"{', '.join(INPUT_TYPES)}.", param="input_type",
                                  code="invalid_value")
    return value


def build_request(body: dict[str, Any], target: Target, url: str,
                  headers: dict[str, str]) -> UpstreamRequest:
    wire = {"model": target.upstream_model, "texts": input_texts(body["input"]),
            "input_type": input_type(body), "embedding_types": ["float"]}
    if body.get("dimensions") is not None:
        wire["output_dimension"] = body["dimensions"]
    return UpstreamRequest("POST", url, headers, wire)


def parse_response(response: UpstreamResponse, target: Target) -> dict:
    payload = response.payload
    embeddings = payload.get("embeddings") if isinstance(payload, dict) else None
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise ValueError("the answer has no float embeddings")
    billed = ((payload.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
    return embedding_list(target.upstream_model, vectors,
                          None if billed is None else int(billed))
