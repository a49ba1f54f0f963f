"""Validation of Anthropic Messages requests (marshmallow), worded like the chat path's.

Fields the schema does not know are kept: Anthropic adds fields, and a pass-through target
receives them as they are. Content block types are checked against the ones the Messages
API defines, with the fields each one needs.
"""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas import (StrictBoolean, StrictInteger, StrictNumber, StrictObject,
                             StrictString, invalid_request, require_object)

# Block type -> the string fields it needs.
BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",), "image": (), "document": (), "tool_use": ("id", "name"),
    "tool_result": ("tool_use_id",), "thinking": ("thinking", "signature"),
    "redacted_thinking": ("data",), "search_result": (), "server_tool_use": ("id", "name"),
    "web_search_tool_result": ("tool_use_id",), "web_fetch_tool_result": ("tool_use_id",),
    "code_execution_tool_result": ("tool_use_id",),
    "bash_code_execution_tool_result": ("tool_use_id",),
    "text_editor_code_execution_tool_result": ("tool_use_id",),
    "tool_search_tool_result": ("tool_use_id",), "mcp_tool_use": ("id", "name"),
    "mcp_tool_result": ("tool_use_id",), "container_upload": (), "tool_reference": (),
}
SOURCED = ("image", "document")
TOOL_CHOICES = ("auto", "any", "tool", "none")
THINKING = ("enabled", "disabled", "adaptive")


def check_block(block: Any, allowed: tuple[str, ...] | None = None) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise ValidationError("must be an object with a string 'type'")
    kind = block["type"]
    if kind not in BLOCK_FIELDS or (allowed is not None and kind not in allowed):
        names = ", ".join(allowed or BLOCK_FIELDS)
        raise ValidationError(f"type {kind!r} is not a content block type here (one of {names})")
    for name in BLOCK_FIELDS[kind]:
        if not isinstance(block.get(name), str):
            raise ValidationError({name: [f"is required in a {kind} block (a string)"]})
    if kind in SOURCED and not isinstance(block.get("source"), dict):
        raise ValidationError({"source": [f"is required in a {kind} block (an object)"]})
    if kind == "tool_use" and not isinstance(block.get("input"), dict):
        raise ValidationError({"input": ["is required in a tool_use block (an object)"]})


class Blocks(fields.Field):
    """A string, or a list of content blocks (`allowed` types only, when given)."""

    def __init__(self, allowed: tuple[str, ...] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.allowed = allowed

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValidationError("must be a string or a list of content blocks")
        for position, block in enumerate(value):
            try:
                check_block(block, self.allowed)
            except ValidationError as exc:
                raise ValidationError({position: exc.messages}) from None
        return value


class MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE

    # `system` turns come with the per-turn-control beta (Claude Code sends them).
    role = StrictString(required=True, validate=validate.OneOf(
        ("user", "assistant", "system"), error="must be user, assistant or system "
                                               "(got {input!r})"))
    content = Blocks(required=True)


class ToolSchema(Schema):
    class Meta:
        unknown = INCLUDE

    name = StrictString(required=True, validate=validate.Length(min=1, max=128))
    type = StrictString()
    input_schema = StrictObject()
    description = StrictString()

    @validates_schema
    def _custom_has_schema(self, data, **kwargs):
        if data.get("type") in (None, "custom") and "input_schema" not in data:
            raise ValidationError("is required for a custom tool", "input_schema")


class ToolChoiceSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = StrictString(required=True, validate=validate.OneOf(TOOL_CHOICES))
    name = StrictString()
    disable_parallel_tool_use = StrictBoolean()

    @validates_schema
    def _named(self, data, **kwargs):
        if data.get("type") == "tool" and not data.get("name"):
            raise ValidationError("is required when type is tool", "name")


class ThinkingSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = StrictString(required=True, validate=validate.OneOf(THINKING))
    budget_tokens = StrictInteger(validate=validate.Range(min=1024, error="must be at least 1024"))


class CountTokensSchema(Schema):
    """POST /v1/messages/count_tokens: a Messages request without `max_tokens`."""

    class Meta:
        unknown = INCLUDE

    model = StrictString(required=True, validate=validate.Length(min=1, error="must not be empty"))
    messages = fields.List(fields.Nested(MessageSchema), required=True,
                           validate=validate.Length(min=1, error="must hold at least one message"))
    system = Blocks(allowed=("text",))
    tools = fields.List(fields.Nested(ToolSchema))
    tool_choice = fields.Nested(ToolChoiceSchema)
    thinking = fields.Nested(ThinkingSchema)


class MessagesRequestSchema(CountTokensSchema):
    max_tokens = StrictInteger(required=True, validate=validate.Range(
        min=1, error="must be at least 1"))
    stop_sequences = fields.List(StrictString())
    temperature = StrictNumber(validate=validate.Range(0, 1, error="must be between 0 and 1"))
    top_p = StrictNumber(validate=validate.Range(0, 1, error="must be between 0 and 1"))
    top_k = StrictInteger(validate=validate.Range(min=0, error="must be at least 0"))
    stream = StrictBoolean()
    metadata = StrictObject()
    # Proxy options, as on /chat/completions.
    fallbacks = fields.List(StrictString())
    num_retries = StrictInteger(validate=validate.Range(0, 10, error="must be between 0 and 10"))
    timeout = StrictNumber(validate=validate.Range(min=0, min_inclusive=False,
                                                   error="must be a positive number of seconds"))
    drop_params = StrictBoolean()


_MESSAGES = MessagesRequestSchema()
_COUNT = CountTokensSchema()
_ROLE = MessageSchema().fields["role"]
# Fields checked one by one on the fast path (their own validators, no schema machinery).
_SCALARS = {name: field for name, field in _MESSAGES.fields.items()
            if not isinstance(field, (fields.List, fields.Nested, Blocks))}
_PLAIN_KEYS = frozenset(_SCALARS) | {"messages", "system"}


def _plainly_valid(body: dict[str, Any]) -> bool:
    """The common request (text turns, a string system prompt, scalar params) checked with
    the schema's own field objects but without its per-request machinery (~200 us saved);
    anything else goes through the full schema, which decides and words the error."""
    messages = body.get("messages")
    if type(messages) is not list or not messages or not _PLAIN_KEYS.issuperset(body) \
            or not isinstance(body.get("system", ""), str) or "max_tokens" not in body \
            or "model" not in body:
        return False
    try:
        for message in messages:
            if type(message) is not dict or len(message) != 2 \
                    or type(message.get("content")) is not str:
                return False
            _ROLE.deserialize(message.get("role", fields.missing_))
        for name, value in body.items():
            if name in _SCALARS:
                _SCALARS[name].deserialize(value)
        return True
    except ValidationError:
        return False


def _validated(schema: Schema, body: Any) -> dict[str, Any]:
    errors = schema.validate(require_object(body))
    if errors:
        raise invalid_request(errors)
    return body


def validate_messages_request(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and _plainly_valid(body):
        return body
    return _validated(_MESSAGES, body)


def validate_count_tokens_request(body: Any) -> dict[str, Any]:
    return _validated(_COUNT, body)
