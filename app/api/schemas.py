"""Validation of the chat request (marshmallow), with messages that say exactly what is wrong.

Types are strict: "0.5" is not a number and 1 is not a boolean, as in OpenAI's API.
Fields the schema does not know are kept (forward compatibility). `null` where OpenAI allows
it means "not given" (the openai SDK sends it for every argument passed as None): it is
accepted and taken out of the body, so no provider ever sees it.
"""
from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.errors import InvalidRequestError

ROLES = ("system", "developer", "user", "assistant", "function", "tool")
# What an assistant message may carry instead of `content`.
ASSISTANT_ANSWERS = ("tool_calls", "function_call", "refusal", "audio")


class StrictNumber(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError("must be a number")
        return value


class StrictInteger(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("must be an integer")
        return value


class StrictBoolean(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("must be a boolean (true or false)")
        return value


class StrictString(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        return value


class StrictObject(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be an object")
        return value


class OneOfShapes(fields.Field):
    """A value that may be a string (from `choices`, when given) or an object."""

    def __init__(self, choices: tuple[str, ...] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            return value
        if isinstance(value, str) and (self.choices is None or value in self.choices):
            return value
        if self.choices:
            raise ValidationError(f"must be one of {', '.join(self.choices)}, or an object")
        raise ValidationError("must be a string or an object")


class Content(fields.Field):
    """Message content: a string, null, or a list of content parts each with a `type`."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list):
            for position, part in enumerate(value):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ValidationError({position: ["must be an object with a string 'type'"]})
            return value
        raise ValidationError("must be a string, null, or a list of content parts")


class Stop(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(s, str) for s in value):
            if len(value) > 4:
                raise ValidationError("may hold at most 4 sequences")
            return value
        raise ValidationError("must be a string or a list of up to 4 strings")


def _object_list(**kwargs):
    return fields.List(StrictObject(), **kwargs)


class MessageSchema(Schema):
    class Meta:
        unknown = INCLUDE

    role = StrictString(required=True, validate=validate.OneOf(
        ROLES, error="must be one of " + ", ".join(ROLES) + " (got {input!r})"))
    content = Content(allow_none=True)
    name = StrictString()
    function_call = StrictObject(allow_none=True)
    tool_calls = _object_list(allow_none=True)
    tool_call_id = StrictString()
    refusal = StrictString(allow_none=True)
    audio = StrictObject(allow_none=True)

    @validates_schema
    def _content_present(self, data, **kwargs):
        if "content" in data and data["content"] is not None:
            return
        if data.get("role") == "assistant" and any(data.get(k) for k in ASSISTANT_ANSWERS):
            return
        raise ValidationError("is required (null is allowed only for an assistant message "
                              "with tool_calls, function_call, refusal or audio)", "content")

    @validates_schema
    def _function_named(self, data, **kwargs):
        if data.get("role") == "function" and not data.get("name"):
            raise ValidationError("is required for a message with role 'function' (the function "
                                  "name whose result it holds)", "name")


class ProxyOptionsSchema(Schema):
    """The model and the proxy's own options, common to every face's request (the openai SDK
    sends the options through extra_body)."""

    class Meta:
        unknown = INCLUDE

    model = StrictString(required=True, validate=validate.Length(min=1, error="must not be empty"))
    fallbacks = fields.List(StrictString())
    num_retries = StrictInteger(validate=validate.Range(0, 10, error="must be between 0 and 10"))
    timeout = StrictNumber(validate=validate.Range(min=0, min_inclusive=False,
                                                   error="must be a positive number of seconds"))
    drop_params = StrictBoolean()
    metadata = StrictObject(allow_none=True)


class SamplingSchema(ProxyOptionsSchema):
    """The sampling and delivery fields the chat and the legacy completions requests share;
    allow_none: null where OpenAI's spec allows it, meaning "not given"."""

    temperature = StrictNumber(allow_none=True, validate=validate.Range(
        0, 2, error="must be between 0 and 2"))
    top_p = StrictNumber(allow_none=True, validate=validate.Range(
        0, 1, error="must be between 0 and 1"))
    n = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, max=128, error="must be between 1 and 128"))
    stream = StrictBoolean(allow_none=True)
    stop = Stop(allow_none=True)
    max_tokens = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, error="must be at least 1"))
    presence_penalty = StrictNumber(allow_none=True, validate=validate.Range(
        -2, 2, error="must be between -2 and 2"))
    frequency_penalty = StrictNumber(allow_none=True, validate=validate.Range(
        -2, 2, error="must be between -2 and 2"))
    logit_bias = StrictObject(allow_none=True)
    user = StrictString(allow_none=True)
    seed = StrictInteger(allow_none=True)
    stream_options = StrictObject(allow_none=True)


class ChatRequestSchema(SamplingSchema):
    messages = fields.List(fields.Nested(MessageSchema), required=True,
                           validate=validate.Length(min=1, error="must hold at least one message"))
    max_completion_tokens = StrictInteger(allow_none=True, validate=validate.Range(
        min=1, error="must be at least 1"))
    functions = _object_list()
    function_call = OneOfShapes(("none", "auto"))
    tools = _object_list()
    tool_choice = OneOfShapes(("none", "auto", "required"))
    parallel_tool_calls = StrictBoolean(allow_none=True)
    response_format = StrictObject(allow_none=True)
    logprobs = StrictBoolean(allow_none=True)
    top_logprobs = StrictInteger(allow_none=True, validate=validate.Range(
        0, 20, error="must be between 0 and 20"))

    @validates_schema
    def _tools_named(self, data, **kwargs):
        for key, path in (("tools", ("function", "name")), ("functions", ("name",))):
            for position, item in enumerate(data.get(key) or ()):
                node = item
                for step in path:
                    node = node.get(step) if isinstance(node, dict) else None
                if not isinstance(node, str) or not node:
                    raise ValidationError({position: {".".join(path): ["is required"]}}, key)


def nullable(schema: Schema) -> frozenset[str]:
    """The fields of `schema` where null means "not given" (declared with allow_none)."""
    return frozenset(name for name, field in schema.fields.items() if field.allow_none)


def without_nulls(body: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """`body` without the nulls of the fields `names` (a copy only when there are any)."""
    if not any(value is None and key in names for key, value in body.items()):
        return body
    return {k: v for k, v in body.items() if v is not None or k not in names}


_SCHEMA = ChatRequestSchema()
_MESSAGE_FIELDS = MessageSchema().fields
# Fields checked one by one on the fast path (their own validators, no schema machinery).
_SCALAR_FIELDS = {name: field for name, field in _SCHEMA.fields.items()
                  if not isinstance(field, (fields.List, fields.Nested))
                  and not field.pre_load and not field.post_load}  # (not run there)
_COMPOUND_FIELDS = frozenset(_SCHEMA.fields) - set(_SCALAR_FIELDS) - {"messages"}
# Where null means "not given": taken out of a valid body (top level, assistant messages).
_NULLABLE = nullable(_SCHEMA) | {
    # Fields this schema passes through unchecked that OpenAI's spec also lets be null.
    "audio", "modalities", "moderation", "prediction", "prompt_cache_key",
    "prompt_cache_retention", "reasoning_effort", "safety_identifier", "service_tier", "store",
    "verbosity"}
_NULLABLE_IN_MESSAGE = frozenset(name for name, field in _MESSAGE_FIELDS.items()
                                 if field.allow_none and name != "content")
_SIMPLE_MESSAGE_KEYS = frozenset({"role", "content", "name"})
_PLAIN_ROLES = frozenset(ROLES) - {"function"}  # a function message has its own rules


def _plainly_valid(body: dict[str, Any]) -> bool:
    """The common request (text messages, scalar params) checked with the schema's own
    field objects but without its per-request machinery, which costs ~100 us. Anything
    this does not recognise as plainly valid goes through the full schema, which decides
    and words the error."""
    messages = body.get("messages")
    if type(messages) is not list or not messages:
        return False
    for message in messages:
        # What the message schema's role, content and name fields accept, checked inline
        # (their `deserialize` took ~1 us each per message).
        if type(message) is not dict or type(message.get("content")) is not str \
                or not _SIMPLE_MESSAGE_KEYS.issuperset(message) \
                or not isinstance(message.get("name", ""), str):
            return False
        role = message.get("role")
        if not isinstance(role, str) or role not in _PLAIN_ROLES:
            return False
    try:
        for name, value in body.items():
            field = _SCALAR_FIELDS.get(name)
            if field is not None:
                # `field.deserialize(value)` for a value that is there, without its steps
                # for missing ones and the validator it builds per call (~3 us a field)
                if value is None:
                    if not field.allow_none:
                        return False
                    continue
                value = field._deserialize(value, name, body)
                for validator in field.validators:
                    validator(value)
            elif name in _COMPOUND_FIELDS:
                return False  # lists of tools, functions, fallbacks: the full schema checks
        return "model" in body
    except ValidationError:
        return False


def _first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """The first leaf of marshmallow's nested errors as ("messages[0].role", "message")."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        if key == "_schema":
            return _first_error(value, path)
        if isinstance(key, int):
            step = f"{path}[{key}]"
        else:
            step = f"{path}.{key}" if path else str(key)
        return _first_error(value, step)
    if isinstance(errors, list):
        return _first_error(errors[0], path) if isinstance(errors[0], (dict, list)) else (path, errors[0])
    return path, str(errors)


_WORDING = {
    "Missing data for required field.": "is required",
    "Field may not be null.": "must not be null",
    "Invalid input type.": "must be an object",
    "Not a valid list.": "must be an array",
}


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_body")
    return body


def invalid_request(errors: Any, wording: dict[str, str] | None = None) -> InvalidRequestError:
    """The OpenAI-style error for marshmallow's errors: the first bad field, plainly worded."""
    param, message = _first_error(errors)
    message = (wording or {}).get(message) or _WORDING.get(message, message)
    code = "missing_required_parameter" if message == "is required" else "invalid_value"
    return InvalidRequestError(f"Invalid parameter '{param}': {message}.", param=param, code=code)


def _without_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """The valid body with its "not given" nulls taken out (a copy only when there are any)."""
    messages = body["messages"]
    cleaned = [without_nulls(message, _NULLABLE_IN_MESSAGE) for message in messages]
    body = without_nulls(body, _NULLABLE)
    if any(a is not b for a, b in zip(cleaned, messages)):
        body = {**body, "messages": cleaned}
    return body


def validate_chat_request(body: Any) -> dict[str, Any]:
    """The body of a valid chat request, its "not given" nulls taken out; InvalidRequestError
    if it is not valid."""
    if not _plainly_valid(require_object(body)):
        errors = _SCHEMA.validate(body)
        if errors:
            raise invalid_request(errors)
    return _without_nulls(body)
