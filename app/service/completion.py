"""The completion service: the library API and what the HTTP endpoint calls.

It splits the proxy's options from the OpenAI params, runs the attempt plan (the
model's deployments with retries, then its fallbacks, within one deadline), and
publishes one event per request for the ledger and the integrations.
"""
from __future__ import annotations

from typing import Any, Iterator

from app.config import Settings, load_settings
from app.errors import InvalidRequestError, ProxyError
from app.registry import ModelRegistry, load_registry
from app.service.attempts import AttemptRunner
from app.service.deployments import CooldownPolicy, DeploymentPool, MemoryCooldowns
from app.service.events import EventBus, RequestContext, build_event
from app.service.outcome import Outcome, Trail
from app.service.router import Router
from app.service.transport import Transport
from app.service.upstream import UpstreamCaller

# Body fields the proxy itself consumes; never sent upstream.
PROXY_FIELDS = ("fallbacks", "cache", "metadata", "drop_params", "num_retries", "timeout",
                "context_window_fallbacks", "mock_response")
# Upstream connection settings a client may not choose (no request forgery through the proxy).
CONNECTION_FIELDS = ("api_base", "base_url", "api_key", "api_version", "organization",
                     "extra_headers")


class CompletionService:
    def __init__(self, settings: Settings | None = None, registry: ModelRegistry | None = None,
                 transport: Transport | None = None):
        self.settings = settings or load_settings()
        self.registry = registry or load_registry()
        self.router = Router(self.settings, self.registry)
        self.upstream = UpstreamCaller(
            transport or Transport(connect_timeout=self.settings.connect_timeout),
            self.settings.stream_timeout)
        self.pool = DeploymentPool(self.settings.routing_strategy, MemoryCooldowns(CooldownPolicy(
            self.settings.allowed_fails, self.settings.fail_window, self.settings.cooldown_time)))
        self.attempts = AttemptRunner(self.settings, self.router, self.pool, self.upstream)
        self.events = EventBus()

    def complete(self, body: dict[str, Any], context: RequestContext | None = None) -> Outcome:
        """Run one chat completion request given in OpenAI's JSON shape.

        Every request, answered or failed, ends in one RequestEvent on `self.events`
        (for a stream, when the stream ends).
        """
        context = context or RequestContext()
        trail = Trail()
        try:
            params, options = self._split(body)
            outcome = self.attempts.run(params.pop("model"), params, options, trail)
        except ProxyError as error:
            self.events.publish(build_event(context, body, None, trail, error))
            raise
        if outcome.chunks is not None:
            outcome.chunks = self._published(outcome.chunks, outcome, body, context)
        else:
            self.events.publish(build_event(context, body, outcome, trail))
        return outcome

    def record_rejection(self, body: Any, error: ProxyError, context: RequestContext) -> None:
        """A request refused before the service ran (bad input, auth) still gets its event."""
        self.events.publish(build_event(context, body if isinstance(body, dict) else {}, None,
                                        Trail(), error))

    @staticmethod
    def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """OpenAI params (sent upstream) apart from the proxy's own options."""
        params = dict(body)
        options = {key: params.pop(key) for key in PROXY_FIELDS if key in params}
        for key in CONNECTION_FIELDS:
            if key in params:
                raise InvalidRequestError(
                    f"'{key}' cannot be set in a request: upstream connection settings come from "
                    f"the proxy's configuration", param=key, code="forbidden_param")
        return params, options

    def _published(self, chunks: Iterator[dict], outcome: Outcome, body: dict[str, Any],
                   context: RequestContext) -> Iterator[dict]:
        """Pass the stream through; publish its event when it ends, however it ends."""
        error: ProxyError | None = None
        try:
            yield from chunks
        except ProxyError as exc:
            error = exc
            raise
        except GeneratorExit:
            error = ProxyError("the client disconnected before the stream ended", status=499,
                               type="client_disconnected", code="client_disconnected")
            raise
        finally:
            self.events.publish(build_event(context, body, outcome, outcome.trail, error))
