"""The OpenAI-compatible family: one table row per provider, no code of their own.

Each row: default base URL, key variables, whether a key is needed (local servers need
none), parameter renames, parameter values the provider refuses, and for a provider whose
chat contract refuses fields it does not define (`additionalProperties: false`: Mistral,
Groq) the fields it `accepts`. A field outside them is dropped and named in
`x-switchboard-dropped-params` when it asks nothing of the model (`user`, a neutral value
such as `logprobs: false`), and otherwise refused unless `drop_params`. `stream_options` is
the proxy's own business there (it makes the usage chunk) and is not sent. A provider with
`short_call_ids` (Mistral) gets tool-call ids of 9 letters and digits (tool_call_ids.py).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from app.providers import legacy_functions
from app.providers.tool_call_ids import with_short_ids
from app.providers.base import NEUTRAL_VALUES, Target
from app.providers.openai import OpenAIProvider

# Fields that change nothing about the answer: left out where a contract lacks them.
INERT = frozenset({"user", "store"})
# langchain-openai always sends max_completion_tokens; these contracts only know max_tokens.
MAX_TOKENS = {"max_completion_tokens": "max_tokens"}

# name: default base (`local`: on the proxy's own host, used only where configured), key
# variables, whether a key is needed, renames, refused values, and
# the text completion route: "completions" (relative to the base; a leading "/" is relative
# to the base without its /v1) for any model not known as a chat model, or "fim" for the
# route that serves only fill-in-the-middle models (`supports_fim` in the registry).
FAMILY: dict[str, dict[str, Any]] = {
    "together": {"base": "https://api.together.xyz/v1",
                 "keys": ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), "completions": "completions",
                 "renames": MAX_TOKENS},
    "groq": {"base": "https://api.groq.com/openai/v1", "keys": ("GROQ_API_KEY",),
             # Groq's contract: n must be 1; logprobs and logit_bias are not implemented.
             "refuses": {"n": lambda v: v not in (None, 1), "logprobs": bool,
                         "top_logprobs": lambda v: v is not None, "logit_bias": bool},
             "accepts": frozenset({
                 "messages", "frequency_penalty", "function_call", "functions", "logit_bias",
                 "logprobs", "max_completion_tokens", "max_tokens", "metadata", "n",
                 "parallel_tool_calls", "presence_penalty", "reasoning_effort",
                 "reasoning_format", "include_reasoning", "response_format", "seed",
                 "service_tier", "stop", "store", "stream", "temperature", "tool_choice",
                 "tools", "top_logprobs", "top_p", "user", "citation_options",
                 "compound_custom", "disable_tool_validation", "documents", "exclude_domains",
                 "include_domains", "search_settings"})},
    "mistral": {"base": "https://api.mistral.ai/v1", "keys": ("MISTRAL_API_KEY",),
                "renames": {"seed": "random_seed", **MAX_TOKENS}, "fim": "fim/completions",
                "text_drops": ("messages", "stream_options"),
                "embedding_renames": {"dimensions": "output_dimension"},
                "embedding_fields": ("dimensions",), "short_call_ids": True,
                "accepts": frozenset({
                    "messages", "frequency_penalty", "guardrails", "max_tokens", "metadata",
                    "n", "parallel_tool_calls", "prediction", "presence_penalty",
                    "prompt_cache_key", "prompt_mode", "random_seed", "reasoning_effort",
                    "response_format", "safe_prompt", "stop", "stream", "temperature",
                    "tool_choice", "tools", "top_p"})},
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
    accepts: frozenset[str] | None = None   # None: the server takes any field

    def __init__(self, name: str, row: Mapping[str, Any]):
        self.name = name
        self.default_base = row["base"]
        self.local_default = row.get("local", False)
        self.key_env = tuple(row["keys"])
        self.base_env = f"{name.upper()}_API_BASE"
        self.key_required = row.get("key_required", True)
        self.renamed_params = dict(row.get("renames", {}))
        self.refuses = dict(row.get("refuses", {}))
        self.accepts = row.get("accepts")
        self.short_call_ids = row.get("short_call_ids", False)
        self.asks_stream_usage = self.accepts is None or "stream_options" in self.accepts
        self.completions_path = row.get("completions") or row.get("fim")
        self.fim_only = "fim" in row
        self.takes_prompt_lists = not self.fim_only   # FIM routes take one prompt
        self.text_drops = row.get("text_drops", self.text_drops)
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
        refused = {k for k, refused in self.refuses.items()
                   if body.get(k) is not None and refused(body[k])}
        return sorted(refused | {k for k in self._outside_contract(body)
                                 if not self._inert(k, body)})

    def dropped_params(self, body: Mapping[str, Any], target: Target) -> list[str]:
        return sorted(k for k in self._outside_contract(body) if self._inert(k, body))

    def _outside_contract(self, body: Mapping[str, Any]) -> list[str]:
        """Fields of a chat body the chat contract lacks (a text completion's body, with its
        `prompt`, goes to another route with a contract of its own)."""
        if self.accepts is None or "prompt" in body:
            return []
        return [k for k, v in body.items() if v is not None and k != "stream_options"
                and self.renamed_params.get(k, k) not in self.accepts
                and not (k in legacy_functions.LEGACY_FIELDS and self._speaks_tools_only)]

    @property
    def _speaks_tools_only(self) -> bool:
        """Legacy function calling is sent as tools (and answered in the legacy shape)."""
        return self.accepts is not None and "functions" not in self.accepts

    @staticmethod
    def _inert(key: str, body: Mapping[str, Any]) -> bool:
        return key in INERT or body[key] in NEUTRAL_VALUES.get(key, ())

    def wire_body(self, body: dict[str, Any], target: Target) -> dict[str, Any]:
        """A client's max_completion_tokens wins over its max_tokens where one is renamed to
        the other."""
        if body.get("max_completion_tokens") is not None and \
                "max_completion_tokens" in self.renamed_params:
            body = {k: v for k, v in body.items() if k != "max_tokens"}
        if self._speaks_tools_only:
            body = legacy_functions.as_tools(body)
        if self.short_call_ids and isinstance(body.get("messages"), list):
            body = {**body, "messages": with_short_ids(body["messages"])}
        return super().wire_body(body, target)


def family_providers() -> dict[str, CompatibleProvider]:
    return {name: CompatibleProvider(name, row) for name, row in FAMILY.items()}
