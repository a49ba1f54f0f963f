"""Span attributes after the OpenTelemetry GenAI semantic conventions, plus `switchboard.*`
for what only the proxy knows. Built from the request's params and from its one event
(app/service/events.py); never from keys, and messages only when the operator asks."""
from __future__ import annotations

import json
from typing import Any, Mapping, NamedTuple

# Our provider names -> the conventions' `gen_ai.provider.name` values.
PROVIDER_NAMES = {"azure": "azure.ai.openai", "gemini": "gcp.gemini", "mistral": "mistral_ai",
                  "xai": "x_ai", "bedrock": "aws.bedrock"}
# Each face's `gen_ai.operation.name`.
OPERATIONS = {"embeddings": "embeddings", "completions": "text_completion"}
_REQUEST_PARAMS = (("max_tokens", "gen_ai.request.max_tokens"),
                   ("max_completion_tokens", "gen_ai.request.max_tokens"),
                   ("max_output_tokens", "gen_ai.request.max_tokens"),
                   ("temperature", "gen_ai.request.temperature"),
                   ("top_p", "gen_ai.request.top_p"))


def operation_name(api: str | None) -> str:
    return OPERATIONS.get(api or "chat", "chat")


def provider_name(provider: str | None) -> str | None:
    return PROVIDER_NAMES.get(provider, provider) if provider else None


def request_attributes(model: str | None, params: Mapping[str, Any], api: str | None) -> dict:
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation_name(api)}
    if model:
        attributes["gen_ai.request.model"] = model
    for name, attribute in _REQUEST_PARAMS:
        value = params.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[attribute] = value
    return attributes


class Outcome(NamedTuple):
    """What a finished request's event tells its span, read from the event on the request's
    path (the event itself, which holds the messages and the answer, is not kept until the
    export), and turned into attributes by `outcome_attributes` when the span is exported."""

    cache: str
    cost: float
    retries: int
    fallbacks: int
    api: str | None
    requested_model: str | None
    provider: str | None
    response_model: str | None
    response_id: str | None
    model: str | None
    deployment: str | None
    key_id: str | None
    key_alias: str | None
    ttft_ms: float | None
    cost_unknown: bool
    error_type: str | None
    input_tokens: int
    output_tokens: int
    finish_reasons: list
    messages: Any  # the request's and the answer's messages: only when captured
    outputs: Any


def outcome(event, capture_messages: bool) -> Outcome:
    response = event.response if isinstance(event.response, dict) else {}
    messages = outputs = None
    if capture_messages:
        messages = event.messages
        outputs = [c.get("message") for c in response.get("choices") or () if isinstance(c, dict)]
    return Outcome(event.cache, event.cost, event.retries, event.fallbacks, event.api,
                   event.requested_model, event.provider, response.get("model") or event.model,
                   response.get("id"), event.model, event.deployment, event.key_id,
                   event.key_alias, event.ttft_ms, event.cost_unknown, event.error_type,
                   event.prompt_tokens, event.completion_tokens, finish_reasons(response),
                   messages, outputs)


def finish_reasons(response: Mapping[str, Any]) -> list:
    """`gen_ai.response.finish_reasons`: each choice's, in an OpenAI-shaped answer."""
    return [c.get("finish_reason") for c in response.get("choices") or ()
            if isinstance(c, dict) and c.get("finish_reason")]


def outcome_attributes(told: Outcome) -> dict:
    """The attributes of what the request's event told: answer, usage, cost, cache, key, route."""
    attributes: dict[str, Any] = {
        "switchboard.cache": told.cache,
        "switchboard.cost": told.cost,
        "switchboard.retries": told.retries,
        "switchboard.fallbacks": told.fallbacks,
        "gen_ai.operation.name": operation_name(told.api),
        "switchboard.api": told.api,
    }
    optional = {
        "gen_ai.request.model": told.requested_model,
        "gen_ai.provider.name": provider_name(told.provider),
        "gen_ai.response.model": told.response_model,
        "gen_ai.response.id": told.response_id,
        "switchboard.model": told.model,
        "switchboard.deployment": told.deployment,
        "switchboard.key_id": told.key_id,
        "switchboard.key_alias": told.key_alias,
        "switchboard.ttft_ms": told.ttft_ms,
        "switchboard.cost_unknown": told.cost_unknown or None,
        "error.type": told.error_type,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if told.model:
        attributes["gen_ai.usage.input_tokens"] = told.input_tokens
        attributes["gen_ai.usage.output_tokens"] = told.output_tokens
    if told.finish_reasons:
        attributes["gen_ai.response.finish_reasons"] = told.finish_reasons
    if told.messages is not None:
        attributes["gen_ai.input.messages"] = json.dumps(told.messages, default=str)
    if told.outputs:
        attributes["gen_ai.output.messages"] = json.dumps(told.outputs, default=str)
    return attributes
