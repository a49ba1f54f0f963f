"""Validation of a Responses-API request: each input item and tool checked for what the
proxy reads, with messages that name the field; fields OpenAI adds later are kept."""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas import (OneOfShapes, ProxyOptionsSchema, StrictBoolean, StrictInteger,
                             StrictNumber, StrictObject, StrictString, invalid_request,
                             require_object)

ROLES = ("user", "assistant", "system", "developer")
PART_TYPES = ("input_text", "input_image", "input_file", "input_audio", "output_text", "refusal")
# Item types of OpenAI's contract: OpenAI models take them all; the others what has a chat form.
ITEM_TYPES = (
    "message", "function_call", "function_call_output", "reasoning", "item_reference",
    "file_search_call", "computer_call", "computer_call_output", "web_search_call",
    "image_generation_call", "code_interpreter_call", "local_shell_call",
    "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
    "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request",
    "mcp_approval_response", "mcp_call", "custom_tool_call", "custom_tool_call_output",
    "compaction", "tool_search_call", "tool_search_output")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
SUMMARIES = ("auto", "concise", "detailed")
FORMATS = ("text", "json_object", "json_schema")


def _one_of(choices: tuple[str, ...]):
    return validate.OneOf(choices, error="must be one of " + ", ".join(choices) + " (got {input!r})")


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class PartSchema(_Open):
    type = StrictString(required=True, validate=_one_of(PART_TYPES))
    text = StrictString()

    @validates_schema
    def _text_present(self, data, **kwargs):
        if data.get("type") in ("input_text", "output_text") and "text" not in data:
            raise ValidationError("is required", "text")


class ItemContent(fields.Field):
    """A message's content: a string or a list of typed parts."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            errors = {i: e for i, e in ((i, _part_errors(p)) for i, p in enumerate(value)) if e}
            if errors:
                raise ValidationError(errors)
            return value
        raise ValidationError("must be a string or a list of content parts")


def _part_errors(part: Any):
    if not isinstance(part, dict):
        return ["must be an object with a string 'type'"]
    return PartSchema().validate(part)


class MessageItem(_Open):
    type = StrictString()
    role = StrictString(required=True, validate=_one_of(ROLES))
    content = ItemContent(required=True)


class FunctionCallItem(_Open):
    type = StrictString()
    call_id = StrictString(required=True)
    name = StrictString(required=True, validate=validate.Length(min=1, error="must not be empty"))
    arguments = StrictString(required=True)
    namespace = StrictString()


class FunctionCallOutputItem(_Open):
    type = StrictString()
    call_id = StrictString(required=True)
    output = fields.Raw(required=True)

    @validates_schema
    def _output_shape(self, data, **kwargs):
        if not isinstance(data.get("output"), (str, list)):
            raise ValidationError("must be a string or a list of content parts", "output")


class ReasoningItem(_Open):
    type = StrictString()
    summary = fields.List(StrictObject(), required=True)
    encrypted_content = StrictString(allow_none=True)


class ItemReference(_Open):
    type = StrictString()
    id = StrictString(required=True, validate=validate.Length(min=1, error="must not be empty"))


ITEM_SCHEMAS = {"message": MessageItem(), "function_call": FunctionCallItem(),
                "function_call_output": FunctionCallOutputItem(), "reasoning": ReasoningItem(),
                "item_reference": ItemReference()}


class Input(fields.Field):
    """A string, or a list of items each of a known type (a bare message needs no type)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValidationError("must be a string or a list of input items")
        for position, item in enumerate(value):
            if not isinstance(item, dict):
                raise ValidationError({position: ["must be an object"]})
            kind = item.get("type", "message")
            if kind not in ITEM_TYPES:
                raise ValidationError({position: {"type": [
                    f"unknown input item type {kind!r}"]}})
            schema = ITEM_SCHEMAS.get(kind)
            errors = schema.validate(item) if schema else {}
            if errors:
                raise ValidationError({position: errors})
        return value


class ToolSchema(_Open):
    type = StrictString(required=True)
    name = StrictString()
    tools = fields.List(StrictObject())

    @validates_schema
    def _named(self, data, **kwargs):
        if data.get("type") in ("function", "namespace") and not data.get("name"):
            raise ValidationError("is required", "name")
        if data.get("type") == "namespace":
            for position, inner in enumerate(data.get("tools") or ()):
                if not isinstance(inner.get("name"), str) or not inner["name"]:
                    raise ValidationError({position: {"name": ["is required"]}}, "tools")


class FormatSchema(_Open):
    type = StrictString(required=True, validate=_one_of(FORMATS))
    name = StrictString()
    schema = StrictObject()

    @validates_schema
    def _schema_present(self, data, **kwargs):
        if data.get("type") == "json_schema":
            for key in ("name", "schema"):
                if key not in data:
                    raise ValidationError("is required", key)


class TextSchema(_Open):
    format = fields.Nested(FormatSchema)


class ReasoningSchema(_Open):
    effort = StrictString(allow_none=True, validate=_one_of(EFFORTS))
    summary = StrictString(allow_none=True, validate=_one_of(SUMMARIES))


class ResponsesRequestSchema(ProxyOptionsSchema):
    input = Input(required=True)
    instructions = StrictString(allow_none=True)
    tools = fields.List(fields.Nested(ToolSchema))
    tool_choice = OneOfShapes(("none", "auto", "required"))
    parallel_tool_calls = StrictBoolean(allow_none=True)
    text = fields.Nested(TextSchema, allow_none=True)
    reasoning = fields.Nested(ReasoningSchema, allow_none=True)
    max_output_tokens = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, error="must be at least 1"))
    temperature = StrictNumber(allow_none=True, validate=validate.Range(
        0, 2, error="must be between 0 and 2"))
    top_p = StrictNumber(allow_none=True, validate=validate.Range(
        0, 1, error="must be between 0 and 1"))
    stream = StrictBoolean(allow_none=True)
    store = StrictBoolean(allow_none=True)
    previous_response_id = StrictString(allow_none=True)
    include = fields.List(StrictString(), allow_none=True)
    truncation = StrictString(allow_none=True, validate=_one_of(("auto", "disabled")))
    user = StrictString(allow_none=True)
    safety_identifier = StrictString(allow_none=True)
    prompt_cache_key = StrictString(allow_none=True)


_SCHEMA = ResponsesRequestSchema()


def validate_responses_request(body: Any) -> dict[str, Any]:
    """The body without its null fields (null means not given) if it is a valid request;
    InvalidRequestError naming the first bad field if not."""
    errors = _SCHEMA.validate(require_object(body))
    if errors:
        raise invalid_request(errors)
    return {key: value for key, value in body.items() if value is not None}
