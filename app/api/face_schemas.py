"""Validation of the /embeddings and /completions requests (OpenAI's fields and types)."""
from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate

from app.api.schemas import (ProxyOptionsSchema, SamplingSchema, StrictBoolean, StrictInteger,
                             StrictString, invalid_request, nullable, require_object,
                             without_nulls)


class TextsOrTokens(fields.Field):
    """A string, an array of strings, an array of token ids, or an array of token-id arrays,
    none of them empty."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not value:
                raise ValidationError("must not be an empty string")
            return value
        if not isinstance(value, list) or not value:
            raise ValidationError("must be a string or a non-empty array of strings, token "
                                  "ids or token-id arrays")
        if all(_token(item) for item in value):
            return value
        for position, item in enumerate(value):
            text = isinstance(item, str) and item
            tokens = isinstance(item, list) and item and all(_token(t) for t in item)
            if not (text or tokens) or type(item) is not type(value[0]):
                raise ValidationError({position: ["must be a non-empty string or a non-empty "
                                                  "array of token ids, like every other item"]})
        return value


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class EmbeddingRequestSchema(ProxyOptionsSchema):
    """OpenAI's embeddings request; null for an optional field means "not given", as on the
    chat path (OpenAI's own server accepts it; the openai SDK may send it)."""

    input = TextsOrTokens(required=True)
    encoding_format = StrictString(allow_none=True, validate=validate.OneOf(
        ("float", "base64"), error="must be float or base64"))
    dimensions = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, error="must be at least 1"))
    user = StrictString(allow_none=True)
    input_type = StrictString(allow_none=True)


class TextCompletionRequestSchema(SamplingSchema):
    """OpenAI's legacy completions request; its spec marks every optional field nullable."""

    prompt = TextsOrTokens(required=True)
    suffix = StrictString(allow_none=True)
    echo = StrictBoolean(allow_none=True)
    logprobs = StrictInteger(allow_none=True, validate=validate.Range(
        0, 5, error="must be between 0 and 5"))
    best_of = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, max=20, error="must be between 1 and 20"))


_EMBEDDING = EmbeddingRequestSchema()
_EMBEDDING_NULLABLE = nullable(_EMBEDDING)
_TEXT = TextCompletionRequestSchema()
_TEXT_NULLABLE = nullable(_TEXT)
# What OpenAI's spec gives a null prompt (nullable, though required).
DEFAULT_PROMPT = "<|endoftext|>"


def validate_embedding_request(body: Any) -> dict[str, Any]:
    """The valid body with its "not given" nulls taken out."""
    errors = _EMBEDDING.validate(require_object(body))
    if errors:
        raise invalid_request(errors)
    return without_nulls(body, _EMBEDDING_NULLABLE)


def validate_text_completion_request(body: Any) -> dict[str, Any]:
    """The valid body with its "not given" nulls taken out (a null prompt is the default)."""
    if isinstance(body, dict) and "prompt" in body and body["prompt"] is None:
        body = {**body, "prompt": DEFAULT_PROMPT}
    errors = _TEXT.validate(require_object(body))
    if errors:
        raise invalid_request(errors)
    return without_nulls(body, _TEXT_NULLABLE)
