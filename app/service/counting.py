"""Counting a prompt's tokens before sending it: the provider's own count endpoint where it
speaks the request's native format and has one, else the provider's count of the translated
chat prompt where it has one (Gemini's countTokens), else counted here with tiktoken."""
from __future__ import annotations

import logging
from typing import Any

from app.errors import ProxyError
from app.providers import get_provider
from app.providers.base import NativeRequest, Provider, Target
from app.service.operations import OperationView
from app.service.outcome import Outcome
from app.service.passthrough import NativeView
from app.service.router import Router
from app.service.upstream import UpstreamCaller
from app.usage.tokens import count_messages

COUNT_TIMEOUT = 30.0
log = logging.getLogger("switchboard")


def count_tokens(router: Router, upstream: UpstreamCaller, params: dict[str, Any],
                 native: NativeRequest | None = None) -> int:
    """Input tokens of `params` (an OpenAI chat request) for its model's first deployment.
    `native.api` names the count operation of the client's format (e.g.
    "messages.count_tokens"); a provider that speaks it answers `{"input_tokens": n}`."""
    target = router.resolve(params["model"])[0]
    provider = get_provider(target.provider)
    if native is not None and provider.speaks(native.api, target):
        router.require_credentials(target)
        view = NativeView(provider, native)
        upstream.call(view, params, target, COUNT_TIMEOUT, Outcome(None, target))
        return int(view.payload["input_tokens"])
    if provider.counts_prompts(target):
        try:
            return provider_count(router, upstream, provider, params, target)
        except ProxyError as exc:   # a count is an estimate: the local one will do
            log.warning("%s could not count tokens (%s); counted locally", target.model,
                        exc.message)
    return count_messages(target.upstream_model, params["messages"], params.get("tools"))


def provider_count(router: Router, upstream: UpstreamCaller, provider: Provider,
                   params: dict[str, Any], target: Target) -> int:
    """The provider's own count of the chat prompt `params`."""
    router.require_credentials(target)
    view = OperationView(provider, provider.build_count_request, provider.parse_count_response)
    return upstream.call(view, params, target, COUNT_TIMEOUT, Outcome(None, target))
