"""Span attributes after the OpenTelemetry GenAI semantic conventions, plus `switchboard.*`
for what only the proxy knows. Built from the request's params and from its one event
(app/service/events.py); never from keys, and messages only when the operator asks."""
from __future__ import annotations

import json
from typing import Any, Mapping

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


def event_attributes(event, capture_messages: bool) -> dict:
    """What the finished request's event tells: answer, usage, cost, cache, key, route."""
    response = event.response if isinstance(event.response, dict) else {}
    attributes: dict[str, Any] = {
        "switchboard.cache": event.cache,
        "switchboard.cost": event.cost,
        "switchboard.retries": event.retries,
        "switchboard.fallbacks": event.fallbacks,
        "gen_ai.operation.name": operation_name(event.api),
        "switchboard.api": event.api,
    }
    optional = {
        "gen_ai.request.model": event.requested_model,
        "gen_ai.provider.name": provider_name(event.provider),
        "gen_ai.response.model": response.get("model") or event.model,
        "gen_ai.response.id": response.get("id"),
        "switchboard.model": event.model,
        "switchboard.deployment": event.deployment,
        "switchboard.key_id": event.key_id,
        "switchboard.key_alias": event.key_alias,
        "switchboard.ttft_ms": event.ttft_ms,
        "switchboard.cost_unknown": event.cost_unknown or None,
        "error.type": event.error_type,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if event.model:
        attributes["gen_ai.usage.input_tokens"] = event.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = event.completion_tokens
    reasons = [c.get("finish_reason") for c in response.get("choices") or ()
               if isinstance(c, dict) and c.get("finish_reason")]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if capture_messages:
        if event.messages is not None:
            attributes["gen_ai.input.messages"] = json.dumps(event.messages, default=str)
        outputs = [c.get("message") for c in response.get("choices") or () if isinstance(c, dict)]
        if outputs:
            attributes["gen_ai.output.messages"] = json.dumps(outputs, default=str)
    return attributes
