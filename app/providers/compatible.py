"""The OpenAI-compatible family: one table row per provider, no code of their own.

Each row: default base URL, key variables, whether a key is needed (local servers need
none), parameter renames, and parameter values the provider refuses.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from app.providers.base import Target
from app.providers.openai import OpenAIProvider

# name: default base (`local`: on the proxy's own host, used only where configured), key
# variables, whether a key is needed, renames, refused values, and
# the text completion route: "completions" (relative to the base; a leading "/" is relative
# to the base without its /v1) for any model not known as a chat model, or "fim" for the
# route that serves only fill-in-the-middle models (`supports_fim` in the registry).
FAMILY: dict[str, dict[str, Any]] = {
    "together": {"base": "https://api.together.xyz/v1",
                 "keys": ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), "completions": "completions"},
    "groq": {"base": "https://api.groq.com/openai/v1", "keys": ("GROQ_API_KEY",),
             # Groq's contract: n must be 1; logprobs and logit_bias are not implemented.
             "refuses": {"n": lambda v: v not in (None, 1), "logprobs": bool,
                         "top_logprobs": lambda v: v is not None, "logit_bias": bool}},
    "mistral": {"base": "https://api.mistral.ai/v1", "keys": ("MISTRAL_API_KEY",),
                "renames": {"seed": "random_seed"}, "fim": "fim/completions",
                "embedding_renames": {"dimensions": "output_dimension"},
                "embedding_fields": ("dimensions",),
                "refuses": {"logit_bias": bool, "logprobs": bool,
                            "top_logprobs": lambda v: v is not None}},
    "openrouter": {"base": "https://openrouter.ai/api/v1", "keys": ("OPENROUTER_API_KEY",),
                   "completions": "completions"},
    "deepinfra": {"base": "https://api.deepinfra.com/v1/openai", "keys": ("DEEPINFRA_API_KEY",),
                  "completions": "completions"},
    "perplexity": {"base": "https://api.perplexity.ai",
                   "keys": ("PERPLEXITY_API_KEY", "PERPLEXITYAI_API_KEY"),
                   "refuses": {"n": lambda v: v not in (None, 1), "tools": bool,
                               "functions": bool, "logit_bias": bool}},
    "fireworks": {"base": "https://api.fireworks.ai/inference/v1",
                  "keys": ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY"),
                  "completions": "completions"},
    "deepseek": {"base": "https://api.deepseek.com/v1", "keys": ("DEEPSEEK_API_KEY",),
                 "fim": "/beta/completions",
                 "refuses": {"n": lambda v: v not in (None, 1)}},
    "xai": {"base": "https://api.x.ai/v1", "keys": ("XAI_API_KEY",)},
    "ollama": {"base": "http://localhost:11434/v1", "local": True, "keys": ("OLLAMA_API_KEY",),
               "key_required": False, "completions": "completions"},
    "vllm": {"base": None, "keys": ("VLLM_API_KEY",), "key_required": False,
             "completions": "completions"},
    "lmstudio": {"base": "http://localhost:1234/v1", "local": True,
                 "keys": ("LMSTUDIO_API_KEY",), "key_required": False, "completions": "completions"},
}


class CompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server described by one FAMILY row."""

    refuses: Mapping[str, Callable[[Any], bool]] = {}

    def __init__(self, name: str, row: Mapping[str, Any]):
        self.name = name
        self.default_base = row["base"]
        self.local_default = row.get("local", False)
        self.key_env = tuple(row["keys"])
        self.base_env = f"{name.upper()}_API_BASE"
        self.key_required = row.get("key_required", True)
        self.renamed_params = dict(row.get("renames", {}))
        self.refuses = dict(row.get("refuses", {}))
        self.completions_path = row.get("completions") or row.get("fim")
        self.fim_only = "fim" in row
        self.embedding_renames = dict(row.get("embedding_renames", {}))
        self.embedding_fields = row.get("embedding_fields", ("dimensions", "user"))

    embeds_token_ids = False  # token ids are decoded to text: not every server takes them

    def speaks_text_completion(self, target: Target) -> bool:
        if self.completions_path is None:
            return False
        if self.fim_only:
            return bool(target.settings.get("supports_fim") or target.info.get("supports_fim"))
        mode = target.settings.get("mode") or target.info.get("mode")
        return mode not in ("chat", "embedding")

    def url(self, target: Target, path: str = "chat/completions") -> str:
        if path.startswith("/"):  # relative to the API's root, not its /v1
            return target.api_base.rstrip("/").removesuffix("/v1") + path
        return super().url(target, path)

    def unsupported_params(self, body: Mapping[str, Any]) -> list[str]:
        return sorted(k for k, refused in self.refuses.items()
                      if body.get(k) is not None and refused(body[k]))


def family_providers() -> dict[str, CompatibleProvider]:
    return {name: CompatibleProvider(name, row) for name, row in FAMILY.items()}
