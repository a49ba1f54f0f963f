"""What a client may know about a model: provider, mode, limits, prices, capabilities, and
the deployments behind a configured name, never their keys (GET /v1/models/{model},
GET /model/info)."""
from __future__ import annotations

from typing import Any

from app.providers.base import Target
from app.service.router import Router

# Registry facts shown as they are (prices per token in USD).
FACTS = ("mode", "context_window", "max_input_tokens", "max_output_tokens", "dimensions",
         "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
         "cache_creation_input_token_cost", "retired")
# Deployment params shown: where and how a deployment is reached, and its own prices. Only
# these (an allow-list), so a key or a header in params can never be shown.
DEPLOYMENT_PARAMS = ("api_base", "api_version", "timeout", "weight", "rpm", "tpm", "base_model",
                     "mode", "task", "input_cost_per_token", "output_cost_per_token",
                     "max_input_tokens")


def model_facts(router: Router, name: str) -> dict[str, Any]:
    """The facts of a model name as the proxy would serve it (404 for an unknown name)."""
    targets = router.resolve(name)
    first = targets[0]
    info = dict(first.info)
    facts: dict[str, Any] = {"model_name": name, "provider": first.provider}
    facts.update({fact: info.get(fact) for fact in FACTS if fact in info})
    for price in ("input_cost_per_token", "output_cost_per_token"):
        if first.settings.get(price) is not None:   # the deployment's own price wins
            facts[price] = float(first.settings[price])
    facts["mode"] = first.settings.get("mode") or info.get("mode") or "chat"
    facts["capabilities"] = {key: value for key, value in sorted(info.items())
                             if key.startswith("supports_")}
    if name in router.aliases:
        facts["deployments"] = [deployment(target) for target in targets]
    return facts


def deployment(target: Target) -> dict[str, Any]:
    shown = {"model": target.model, "provider": target.provider}
    shown.update({name: target.settings[name] for name in DEPLOYMENT_PARAMS
                  if target.settings.get(name) is not None and name != "api_base"})
    if target.settings.get("api_base"):
        shown["api_base"] = target.api_base     # resolved from os.environ/..., never a key
    return shown
