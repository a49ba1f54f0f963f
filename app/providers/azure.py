"""Azure OpenAI: OpenAI's body, with the deployment in the URL and an `api-key` header."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from app.providers.base import Target
from app.providers.openai import OpenAIProvider
from app.providers.openai_responses import speaks_responses

DEFAULT_API_VERSION = "2024-10-21"


class AzureProvider(OpenAIProvider):
    name = "azure"
    key_env = ("AZURE_API_KEY",)
    base_env = "AZURE_API_BASE"
    version_env = "AZURE_API_VERSION"
    self_hosted_without_key = False
    default_base = None  # every Azure resource has its own endpoint

    def headers(self, target: Target) -> dict[str, str]:
        return {"Content-Type": "application/json", "api-key": target.api_key or ""}

    def url(self, target: Target, path: str = "chat/completions") -> str:
        version = target.api_version or DEFAULT_API_VERSION
        return (f"{target.api_base.rstrip('/')}/openai/deployments/{quote(target.upstream_model, safe='')}"
                f"/{path}?api-version={quote(version, safe='')}")

    def speaks(self, api: str, target: Target) -> bool:
        return api == "responses" and speaks_responses(target, official=True)

    def responses_url(self, target: Target) -> str:
        """Azure's v1 API (no api-version); the body's model names the deployment."""
        return f"{target.api_base.rstrip('/')}/openai/v1/responses"

    def wire_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        return self.strip_model(super().wire_body(body, target))

    def strip_model(self, wire: dict[str, Any]) -> dict[str, Any]:
        wire.pop("model", None)  # the deployment in the URL selects the model
        return wire
