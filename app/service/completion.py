"""The completion service: the library API and what the HTTP endpoint calls.

It splits the proxy's options from the OpenAI params, runs the attempt plan (the
model's deployments with retries, then its fallbacks, within one deadline), and
publishes one event per request for the ledger and the integrations.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from app.config import Settings, load_settings
from app.errors import ClientDisconnected, ProxyError
from app.cache import build_cache
from app.cache.options import cache_options
from app.cache.types import CacheRequest, ResponseCache
from app.providers.base import NativeRequest, Target, completion_id
from app.registry import ModelRegistry, load_registry
from app.service.accounting import Bill
from app.service.consumers import build_consumers
from app.service.counting import count_tokens
from app.service.attempts import AttemptRunner
from app.service.client_connection import ClientRouter, take_client_connection
from app.service.embeddings import EmbeddingService, without_vectors
from app.service.operations import CHAT, Operation
from app.service.deployments import CooldownPolicy, DeploymentPool, cooldown_store
from app.service.events import EventBus, RequestContext, build_event
from app.service.outcome import Outcome, Trail
from app.service.router import Router
from app.service.streaming import replay
from app.service.transport import Transport
from app.service.upstream import UpstreamCaller
from app.tracing import spans

log = logging.getLogger("switchboard")


def as_proxy_error(error: Exception) -> ProxyError:
    """The error an event records: ours as it is, anything else as an internal fault."""
    if isinstance(error, ProxyError):
        return error
    return ProxyError(f"internal error: {type(error).__name__}", code="internal_error")

# Body fields the proxy itself consumes; never sent upstream.
PROXY_FIELDS = ("fallbacks", "cache", "metadata", "drop_params", "num_retries", "timeout",
                "context_window_fallbacks", "mock_response")


class CompletionService:
    def __init__(self, settings: Settings | None = None, registry: ModelRegistry | None = None,
                 transport: Transport | None = None, cache: ResponseCache | None = None):
        self.settings = settings or load_settings()
        self.registry = registry or load_registry()
        self.router = Router(self.settings, self.registry)
        self.upstream = UpstreamCaller(
            transport or Transport(connect_timeout=self.settings.connect_timeout),
            self.settings.stream_timeout)
        self.pool = DeploymentPool(self.settings.routing_strategy, cooldown_store(CooldownPolicy(
            self.settings.allowed_fails, self.settings.fail_window, self.settings.cooldown_time),
            self.settings.env.get("REDIS_URL"), self.settings.redis_timeout))
        self.attempts = AttemptRunner(self.settings, self.router, self.pool, self.upstream)
        self.cache = cache if cache is not None else build_cache(self.settings)
        self.embeddings = EmbeddingService(self)
        self.events = EventBus()
        self.consumers = build_consumers(self)
        for consumer in self.consumers:
            self.events.subscribe(consumer.handle, getattr(consumer, "after_answer", False))

    def close(self, timeout: float = 10.0) -> None:
        """Flush what the consumers still hold (ledger rows, integration events) within
        `timeout` seconds; called on graceful shutdown."""
        deadline = time.monotonic() + timeout
        for consumer in self.consumers:
            consumer.close(max(0.0, deadline - time.monotonic()))

    def complete(self, body: dict[str, Any], context: RequestContext | None = None,
                 operation: Operation = CHAT) -> Outcome:
        """Run one chat completion request given in OpenAI's JSON shape (or, with `operation`
        TEXT, a text completion: see app/service/operations.py).

        Every request, answered or failed, ends in one RequestEvent on `self.events`
        (for a stream, when the stream ends).
        """
        context = context or RequestContext()
        trail = Trail()
        try:
            params, options = self._split(body)
            requested = params.pop("model")
            # A client's own upstream settings, where the operator allows them (never cached).
            connection = take_client_connection(params, requested, self.router)
            cache_request = None if connection else self._cache_request(
                requested, params, options, context, operation.cache_scope())
            outcome = (self._traced_lookup(cache_request, params, operation) if cache_request
                       else None)
            if outcome is None:
                outcome = self.runner(connection).run(requested, params, options, trail,
                                                      context.models, operation)
                outcome.cache = "miss" if cache_request else "off"
        except Exception as error:  # a proxy fault is a failed request too: it gets its event
            self.events.publish(build_event(context, body, None, trail, as_proxy_error(error)))
            raise
        if outcome.chunks is not None:
            if context.client is not None and outcome.upstream is not None:
                outcome.upstream.watch(context.client)  # a hang-up ends the upstream call
            outcome.chunks = self._published(outcome.chunks, outcome, body, context,
                                             cache_request, operation)
        else:
            if cache_request and outcome.cache == "miss":
                self._store(cache_request, outcome, outcome.response, operation.kept(outcome))
            self.events.publish(build_event(context, body, outcome, trail))
        return outcome

    def embed(self, body: dict[str, Any], context: RequestContext | None = None) -> Outcome:
        """Run one embeddings request: {model, input: [text or token ids], dimensions?,
        input_type?, user?} plus the proxy's options (app/service/embeddings.py)."""
        context = context or RequestContext()
        trail = Trail()
        try:
            outcome = self.embeddings.run(body, context, trail)
        except Exception as error:
            self.events.publish(build_event(context, body, None, trail, as_proxy_error(error)))
            raise
        event = build_event(context, body, outcome, trail)
        event.response = without_vectors(outcome.response)
        self.events.publish(event)
        return outcome

    def runner(self, connection) -> AttemptRunner:
        """The attempt plan's runner: the configured routes, or a client's own connection."""
        if connection is None:
            return self.attempts
        return AttemptRunner(self.settings, ClientRouter(self.router, connection), self.pool,
                             self.upstream)

    def count_tokens(self, params: dict[str, Any], native: NativeRequest | None = None) -> int:
        """Input tokens of a request before it is sent (see app/service/counting.py)."""
        return count_tokens(self.router, self.upstream, params, native)

    def record_rejection(self, body: Any, error: ProxyError, context: RequestContext) -> None:
        """A request refused before the service ran (bad input, auth) still gets its event."""
        self.events.publish(build_event(context, body if isinstance(body, dict) else {}, None,
                                        Trail(), error))

    @staticmethod
    def _split(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """OpenAI params (sent upstream) apart from the proxy's own options."""
        params = dict(body)
        options = {key: params.pop(key) for key in PROXY_FIELDS if key in params}
        return params, options

    def _cache_request(self, requested: str, params: dict[str, Any], options: dict[str, Any],
                       context: RequestContext, scope: dict | None) -> CacheRequest | None:
        controls = cache_options(options.get("cache"))  # a bad `cache` object is a 400 either way
        if self.cache is None or (controls.get("no-cache") and controls.get("no-store")):
            return None
        if scope is not None:
            params = {**params, "scope": scope}
        return CacheRequest(requested, params, controls, context.key_id)

    def _traced_lookup(self, request: CacheRequest, params: dict[str, Any],
                       operation: Operation) -> Outcome | None:
        with spans.step("switchboard.cache.lookup") as span:
            outcome = self._cached(request, params, operation)
            if span is not None:
                span.set_attribute("switchboard.cache", outcome.cache if outcome else "miss")
            return outcome

    def _cached(self, request: CacheRequest, params: dict[str, Any],
                operation: Operation) -> Outcome | None:
        """An Outcome served from the cache, or None. A broken cache is a miss, never a failure.
        A pass-through's own answer kept with the entry answers a hit of its face."""
        try:
            answer = self.cache.lookup(request)
        except Exception:
            log.exception("cache lookup failed; serving uncached")
            return None
        if answer is None:
            return None
        response = {**answer.response, "id": completion_id(), "created": int(time.time())}
        target = Target(request.model_group, answer.model, answer.provider, answer.model,
                        None, None, "cache")
        outcome = Outcome(response, target, cache=answer.status, cache_key=answer.key,
                          cache_similarity=answer.similarity, saved_cost=answer.cost,
                          bill=Bill.free(response.get("usage") or {}))
        stream = bool(params.get("stream"))
        native = operation.cached(answer.native, stream) if answer.native else None
        outcome.passthrough = native is not None
        if stream:
            include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
            outcome.chunks = native if native is not None else replay(response, include_usage)
            outcome.response, outcome.replayed = None, response
        elif native is not None:
            outcome.native = native
        return outcome

    def _store(self, request: CacheRequest, outcome: Outcome, response: dict,
               native: dict | None = None) -> None:
        """Keep a finished answer; errors, cut streams and filtered answers never get here or
        are refused by the cache itself."""
        if any(c.get("finish_reason") == "content_filter" for c in response.get("choices") or ()):
            return
        try:
            self.cache.store(request, response, outcome.target.model, outcome.target.provider,
                             outcome.bill.cost if outcome.bill else 0.0, native=native)
        except Exception:
            log.exception("cache store failed")

    def _published(self, chunks: Iterator[dict], outcome: Outcome, body: dict[str, Any],
                   context: RequestContext, cache_request: CacheRequest | None,
                   operation: Operation) -> Iterator[dict]:
        """Pass the stream through; publish its event when it ends, however it ends, and cache
        it once it has finished whole (a pass-through's own events with it)."""
        error: ProxyError | None = None
        storing = cache_request and outcome.cache == "miss" and outcome.stream is not None
        events: list = []
        try:
            yield from recorded(chunks, events) if storing and outcome.passthrough else chunks
            if storing:
                completed = outcome.stream.completion()
                completed["usage"] = outcome.stream.bill.usage
                self._store(cache_request, outcome, completed, operation.kept(outcome, events))
        except GeneratorExit:
            error = ClientDisconnected()
            raise
        except Exception as exc:
            error = as_proxy_error(exc)
            raise
        finally:
            self.events.publish(build_event(context, body, outcome, outcome.trail, error))


def recorded(items: Iterator, into: list) -> Iterator:
    """`items` passed on, each also added to `into`."""
    for item in items:
        into.append(item)
        yield item
