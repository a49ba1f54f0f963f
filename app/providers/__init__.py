"""Provider modules by name. Adding a provider = one module plus one line here."""
from __future__ import annotations

from app.providers.azure import AzureProvider
from app.providers.base import Provider
from app.providers.compatible import family_providers
from app.providers.openai import OpenAIProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "azure": AzureProvider(),
    **family_providers(),
}

# Other spellings of a provider prefix that clients use.
PROVIDER_ALIASES = {"together_ai": "together", "fireworks_ai": "fireworks",
                    "hosted_vllm": "vllm", "lm_studio": "lmstudio", "azure_openai": "azure"}


def get_provider(name: str) -> Provider | None:
    return PROVIDERS.get(PROVIDER_ALIASES.get(name, name))
