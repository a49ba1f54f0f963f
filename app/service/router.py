"""Model resolution: the name a client sends -> the deployments (Targets) that can serve it.

Order: config aliases (`model_list`; a `model_name` may be a pattern such as `claude-*`, the
most specific pattern matching), then the registry, then naming rules
(`gpt-*` -> OpenAI, `<provider>/<model>`, ...). Everything here is computed from
settings loaded once; per request it is a few dictionary look-ups.
"""
from __future__ import annotations

import fnmatch
import re
from typing import Any

from app.config import ConfigError, Deployment, Settings
from app.errors import MissingCredentialError, ModelNotFoundError
from app.providers import PROVIDERS, get_provider
from app.providers.base import Provider, Target
from app.registry import ModelRegistry
from app.service.egress import UnsafeUpstream, parse_url

# (pattern on the bare name, provider) tried in order when neither config nor registry knows it.
NAME_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^(gpt-|o1|o3|o4|chatgpt-|ft:gpt-)"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^command"), "cohere"),
    (re.compile(r"^gemini-"), "gemini"),
]

# Retired APIs: a clear 404 that names what replaced them.
RETIRED = {
    "palm": "Google retired the PaLM API; use a Gemini model such as gemini/gemini-2.5-flash",
    "chat-bison": "Google retired PaLM chat-bison; use a Gemini model such as gemini/gemini-2.5-flash",
    "text-bison": "Google retired PaLM text-bison; use a Gemini model such as gemini/gemini-2.5-flash",
}

LIST_MODELS_HINT = "GET /v1/models lists the model names this proxy serves"
_MODEL_NAME = re.compile(r"[\x20-\x7e]+")  # printable ASCII


def check_base(api_base: str | None, where: str) -> None:
    """A base URL the URL parser refuses is a ConfigError at start naming where it was set
    (said once, not by every request's failure); the parser's message never echoes the URL,
    which may hold credentials."""
    try:
        if api_base:
            parse_url(api_base)
    except UnsafeUpstream as exc:
        raise ConfigError(f"{where} {exc}") from None


def is_pattern(model_name: str) -> bool:
    return "*" in model_name or "?" in model_name


class Router:
    def __init__(self, settings: Settings, registry: ModelRegistry):
        self.settings = settings
        self.registry = registry
        self.aliases: dict[str, list[Deployment]] = {}
        for deployment in settings.deployments:
            self.aliases.setdefault(deployment.model_name, []).append(deployment)
            where = f"config model_list[{deployment.index}] (model_name {deployment.model_name!r})"
            base = deployment.params.get("base_model")
            if base and registry.get(base) is None:
                raise ConfigError(f"{where}: params.base_model: {base!r} is not in the model "
                                  f"registry")
            check_base(settings.env_value(deployment.params.get("api_base")),
                       f"{where}: params.api_base")
        for name in sorted({p.base_env for p in PROVIDERS.values() if p.base_env}):
            check_base(settings.env.get(name), f"environment variable {name}")
        # model_name patterns (`claude-*`, `*haiku*`), the most specific first: the one that
        # matches the fewest model names the registry knows (`*haiku*` before `claude-*`),
        # then the one with more literal characters. An exact model_name always wins.
        known = [name for name, _ in registry.items()]
        self.patterns = sorted(
            (name for name in self.aliases if is_pattern(name)),
            key=lambda name: (len(fnmatch.filter(known, name)),
                              -len(name.replace("*", "").replace("?", ""))))
        self._cache: dict[str, tuple[Target, ...]] = {}

    def resolve(self, name: str) -> tuple[Target, ...]:
        """All deployments for `name`; raises ModelNotFoundError for a name nothing claims."""
        targets = self._cache.get(name)
        if targets is None:
            if not _MODEL_NAME.fullmatch(name):
                # a name goes into upstream URLs and our response headers: no line breaks
                raise ModelNotFoundError("The model name holds characters no model name has "
                                         "(control characters or non-ASCII); "
                                         f"{LIST_MODELS_HINT}.", param="model")
            alias = name if name in self.aliases else self.pattern_for(name)
            if alias is not None:
                targets = tuple(self._target(name, d.model, d.params, f"{alias}[{d.index}]",
                                             configured=True) for d in self.aliases[alias])
            else:
                targets = (self._target(name, name, {}, name, configured=False),)
            if len(self._cache) < 10_000:  # bounded: clients choose the names
                self._cache[name] = targets
        return targets

    def pattern_for(self, name: str) -> str | None:
        """The most specific model_name pattern `name` matches, or None."""
        return next((p for p in self.patterns if fnmatch.fnmatchcase(name, p)), None)

    def _target(self, group: str, model: str, params: dict[str, Any], deployment_id: str,
                configured: bool) -> Target:
        provider, upstream_model, info = self.split(model)
        if params.get("base_model"):
            # A deployment with a name of its own (Azure, fine-tunes) borrows the facts of the
            # model it runs: prices, context window, capabilities.
            info = self.registry.get(params["base_model"]) or info
        settings = self.settings
        base = settings.env_value(params.get("api_base"), provider.base_env)
        if base is None and provider.local_default and not configured:
            # A server on the proxy's own host (Ollama, LM Studio) is the operator's to open,
            # never any client's by naming `ollama/...`.
            raise ModelNotFoundError(
                f"model {group!r} is not served here: {provider.name} runs on this host only "
                f"when configured (set {provider.base_env} or add it to model_list)",
                param="model")
        base = base or provider.default_base
        if base is None:
            raise ModelNotFoundError(
                f"model {group!r} needs an api_base: set {provider.base_env} or api_base in config",
                param="model")
        secret = settings.secret(params.get("api_key"), provider.key_env)
        # A self-hosted server configured in model_list (vLLM, TGI, ...) may need no key; but
        # a key the config names (`os.environ/NAME`) is required: its variable being unset
        # must be a 401 naming it, never a call sent upstream without the key.
        key_required = secret.referenced or (provider.key_required and not (
            provider.self_hosted_without_key and params.get("api_base") is not None))
        version = settings.env_value(params.get("api_version"), provider.version_env)
        return Target(group, model, provider.name, upstream_model, base, secret.value,
                      secret.source, version, info, params, key_required, deployment_id)

    def split(self, model: str) -> tuple[Provider, str, dict[str, Any]]:
        """provider, upstream model id and registry facts for a provider-qualified name."""
        info = self.registry.get(model)
        if info is not None:
            provider = get_provider(info["provider"])
            if provider is not None:
                return provider, info.get("upstream_model", model), info
        prefix, _, rest = model.partition("/")
        if rest:
            if prefix in RETIRED:
                raise ModelNotFoundError(f"model {model!r} is retired: {RETIRED[prefix]}",
                                         param="model")
            provider = get_provider(prefix)
            if provider is not None:
                return provider, rest, self.registry.find_upstream(provider.name, rest) or {}
            hf = PROVIDERS.get("huggingface")
            if hf is not None and "/" not in rest:
                return hf, model, self.registry.find_upstream(hf.name, model) or {}
        for family, reason in RETIRED.items():
            if model.startswith(family):
                raise ModelNotFoundError(f"model {model!r} is retired: {reason}", param="model")
        for pattern, provider_name in NAME_RULES:
            provider = PROVIDERS.get(provider_name)
            if provider is not None and pattern.match(model):
                return provider, model, self.registry.find_upstream(provider_name, model) or {}
        raise ModelNotFoundError(f"The model {model!r} does not exist or is not served here; "
                                 f"{LIST_MODELS_HINT}.", param="model")

    def require_credentials(self, target: Target) -> None:
        """Refuse, without calling upstream, a target whose key the operator has not set."""
        if target.key_required and not target.api_key:
            raise MissingCredentialError(
                f"no API key for provider {target.provider} (model {target.model_group!r}): "
                f"set the environment variable {target.key_source} or api_key in config")

    def configured_targets(self) -> list[Target]:
        """Every deployment in model_list (for /health/deployments)."""
        return [target for name in self.aliases for target in self.resolve(name)]

    def available_models(self) -> list[tuple[str, str]]:
        """(name, provider) for config aliases and registry models whose provider has credentials."""
        listed = {name: self.split(ds[0].model)[0].name for name, ds in self.aliases.items()
                  if not is_pattern(name)}  # a pattern is not a name a client can list
        for name, info in self.registry.items():
            if name in listed:
                continue
            provider = get_provider(info["provider"])
            if provider is not None and self._has_credentials(provider):
                listed[name] = provider.name
        return sorted(listed.items())

    def _has_credentials(self, provider: Provider) -> bool:
        env = self.settings.env
        if provider.key_required:
            return any(env.get(name) for name in provider.key_env)
        return bool(env.get(provider.base_env or ""))

