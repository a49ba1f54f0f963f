"""POST /utils/token_counter and POST /spend/calculate: counts and cost before (or after) a
call, for clients that budget ahead. No upstream call is made."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from marshmallow import INCLUDE, Schema, fields, validate

from app.api.body import read_json_body
from app.api.schemas import (Content, MessageSchema, StrictInteger, StrictObject, StrictString,
                             invalid_request, require_object, validate_chat_request)
from app.errors import InvalidRequestError
from app.jsonfast import dumps
from app.usage.quote import prompt_tokens, quote_completion, quote_prompt

bp = Blueprint("budget", __name__)

MAX_TOKENS = 10 ** 12       # beyond any model; keeps every figure a plain JSON number


def _count(**kwargs):
    return StrictInteger(allow_none=True, validate=validate.Range(
        0, MAX_TOKENS, error=f"must be an integer from 0 to {MAX_TOKENS}"), **kwargs)


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class _PromptDetails(_Open):
    cached_tokens = _count()


class _CompletionDetails(_Open):
    reasoning_tokens = _count()


class _Usage(_Open):
    prompt_tokens = _count()
    completion_tokens = _count()
    total_tokens = _count()
    cache_creation_input_tokens = _count()
    prompt_tokens_details = fields.Nested(_PromptDetails, allow_none=True)
    completion_tokens_details = fields.Nested(_CompletionDetails, allow_none=True)


class _Function(_Open):
    name = StrictString()
    arguments = StrictString()


class _ToolCall(_Open):
    function = fields.Nested(_Function)


class _Answer(_Open):
    content = Content(allow_none=True)
    tool_calls = fields.List(fields.Nested(_ToolCall), allow_none=True)


class _Choice(_Open):
    message = fields.Nested(_Answer)


class _Completion(_Open):
    choices = fields.List(fields.Nested(_Choice))
    usage = fields.Nested(_Usage, allow_none=True)


class _CompletionQuote(_Open):
    model = StrictString(required=True, validate=validate.Length(min=1, error="must not be empty"))
    completion = fields.Nested(_Completion, required=True)
    messages = fields.List(fields.Nested(MessageSchema))
    tools = fields.List(StrictObject())
    functions = fields.List(StrictObject())


_COMPLETION_QUOTE = _CompletionQuote()


def _checked(body: Any) -> dict[str, Any]:
    """A completion-quote body, or the OpenAI-style error naming the first bad field."""
    errors = _COMPLETION_QUOTE.validate(require_object(body))
    if errors:
        raise invalid_request(errors)
    usage = body["completion"].get("usage") or {}
    if usage.get("prompt_tokens") is None and not body.get("messages"):
        raise InvalidRequestError(
            "Invalid parameter 'messages': is required when the completion's usage has no "
            "prompt_tokens (the prompt is counted from them).", param="messages",
            code="missing_required_parameter")
    return body


def _chat_body(body: Any) -> dict[str, Any]:
    body = validate_chat_request(body)
    for name in ("max_tokens", "max_completion_tokens"):
        if (body.get(name) or 0) > MAX_TOKENS:
            raise InvalidRequestError(f"Invalid parameter '{name}': must be at most {MAX_TOKENS}.",
                                      param=name, code="invalid_value")
    return body


def _target(model: str):
    """The model's first deployment, as the proxy would route it (404 for an unknown model)."""
    return current_app.extensions["switchboard"].router.resolve(model)[0]


def _json(value: dict[str, Any]) -> Response:
    return Response(dumps(value), mimetype="application/json")


@bp.post("/utils/token_counter")
def token_counter():
    body = _chat_body(read_json_body())
    tokens, estimated = prompt_tokens(_target(body["model"]), body)
    return _json({"tokens": tokens, "model": body["model"], "estimated": estimated})


@bp.post("/spend/calculate")
def calculate():
    body = read_json_body()
    if isinstance(body, dict) and "completion" in body:
        body = _checked(body)
        return _json(quote_completion(_target(body["model"]), body))
    body = _chat_body(body)
    return _json(quote_prompt(_target(body["model"]), body))
