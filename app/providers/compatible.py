"""The OpenAI-compatible family: one table row per provider, no code of their own.

Each row: default base URL, key variables, whether a key is needed (local servers need
none), parameter renames, and parameter values the provider refuses.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from app.providers.openai import OpenAIProvider

# name: (default base, key variables, key required, renames, refused values)
FAMILY: dict[str, dict[str, Any]] = {
    "together": {"base": "https://api.together.xyz/v1",
                 "keys": ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY")},
    "groq": {"base": "https://api.groq.com/openai/v1", "keys": ("GROQ_API_KEY",),
             # Groq's contract: n must be 1; logprobs and logit_bias are not implemented.
             "refuses": {"n": lambda v: v not in (None, 1), "logprobs": bool,
                         "top_logprobs": lambda v: v is not None, "logit_bias": bool}},
    "mistral": {"base": "https://api.mistral.ai/v1", "keys": ("MISTRAL_API_KEY",),
                "renames": {"seed": "random_seed"},
                "refuses": {"logit_bias": bool, "logprobs": bool,
                            "top_logprobs": lambda v: v is not None}},
    "openrouter": {"base": "https://openrouter.ai/api/v1", "keys": ("OPENROUTER_API_KEY",)},
    "deepinfra": {"base": "https://api.deepinfra.com/v1/openai", "keys": ("DEEPINFRA_API_KEY",)},
    "perplexity": {"base": "https://api.perplexity.ai",
                   "keys": ("PERPLEXITY_API_KEY", "PERPLEXITYAI_API_KEY"),
                   "refuses": {"n": lambda v: v not in (None, 1), "tools": bool,
                               "functions": bool, "logit_bias": bool}},
    "fireworks": {"base": "https://api.fireworks.ai/inference/v1",
                  "keys": ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY")},
    "deepseek": {"base": "https://api.deepseek.com/v1", "keys": ("DEEPSEEK_API_KEY",),
                 "refuses": {"n": lambda v: v not in (None, 1)}},
    "xai": {"base": "https://api.x.ai/v1", "keys": ("XAI_API_KEY",)},
    "ollama": {"base": "http://localhost:11434/v1", "keys": ("OLLAMA_API_KEY",),
               "key_required": False},
    "vllm": {"base": None, "keys": ("VLLM_API_KEY",), "key_required": False},
    "lmstudio": {"base": "http://localhost:1234/v1", "keys": ("LMSTUDIO_API_KEY",),
                 "key_required": False},
}


class CompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server described by one FAMILY row."""

    refuses: Mapping[str, Callable[[Any], bool]] = {}

    def __init__(self, name: str, row: Mapping[str, Any]):
        self.name = name
        self.default_base = row["base"]
        self.key_env = tuple(row["keys"])
        self.base_env = f"{name.upper()}_API_BASE"
        self.key_required = row.get("key_required", True)
        self.renamed_params = dict(row.get("renames", {}))
        self.refuses = dict(row.get("refuses", {}))

    def unsupported_params(self, body: Mapping[str, Any]) -> list[str]:
        return sorted(k for k, refused in self.refuses.items()
                      if body.get(k) is not None and refused(body[k]))


def family_providers() -> dict[str, CompatibleProvider]:
    return {name: CompatibleProvider(name, row) for name, row in FAMILY.items()}
