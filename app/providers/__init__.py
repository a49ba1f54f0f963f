"""Provider modules by name. Adding a provider = one module plus one line here."""
from __future__ import annotations

from app.providers.anthropic import AnthropicProvider
from app.providers.azure import AzureProvider
from app.providers.base import Provider
from app.providers.cohere import CohereProvider
from app.providers.compatible import family_providers
from app.providers.gemini import GeminiProvider
from app.providers.huggingface import HuggingFaceProvider
from app.providers.openai import OpenAIProvider
from app.providers.replicate import ReplicateProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "azure": AzureProvider(),
    "anthropic": AnthropicProvider(),
    "cohere": CohereProvider(),
    "gemini": GeminiProvider(),
    "huggingface": HuggingFaceProvider(),
    "replicate": ReplicateProvider(),
    **family_providers(),
}

# Other spellings of a provider prefix that clients use.
PROVIDER_ALIASES = {"together_ai": "together", "fireworks_ai": "fireworks",
                    "hosted_vllm": "vllm", "lm_studio": "lmstudio", "azure_openai": "azure"}


def get_provider(name: str) -> Provider | None:
    return PROVIDERS.get(PROVIDER_ALIASES.get(name, name))
