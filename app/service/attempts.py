"""The attempt plan: the requested model's deployments with retries, then each fallback,
then context-window fallbacks where a prompt is too long, all within one deadline."""
from __future__ import annotations

import time
from typing import Any, Iterator

from app.config import Settings
from app.errors import (ClientDisconnected, InvalidRequestError, ModelNotFoundError,
                        ProxyError, UnsupportedParamsError, UpstreamError)
from app.providers import get_provider
from app.providers.base import Provider, Target
from app.service.operations import CHAT, Operation
from app.service.passthrough import NativeView
from app.service.deployments import DeploymentPool
from app.service.outcome import Outcome, Trail
from app.service.reliability import (Attempt, all_routes_failed, backoff_seconds,
                                     counts_against_deployment, falls_back,
                                     is_context_window_error, is_retryable)
from app.service.router import Router
from app.service.upstream import UpstreamCaller, timeout_error
from app.tracing import spans
from app.usage.tokens import count_messages


class AttemptRunner:
    def __init__(self, settings: Settings, router: Router, pool: DeploymentPool,
                 upstream: UpstreamCaller):
        self.settings = settings
        self.router = router
        self.pool = pool
        self.upstream = upstream

    def run(self, requested: str, params: dict[str, Any], options: dict[str, Any],
            trail: Trail, allowed: tuple[str, ...] = (), operation: Operation = CHAT) -> Outcome:
        """Answer from the first route that can; raise the most meaningful failure if none can.
        `allowed`: the only models the caller may reach (a virtual key's `models`; empty: any),
        so no configured fallback answers with a model the key may not use. `operation` says
        what each attempt asks of a deployment (chat by default)."""
        timeout = float(options.get("timeout") or self.settings.request_timeout)
        deadline = time.monotonic() + timeout
        retry_budget = options.get("num_retries", self.settings.num_retries)
        plan = [requested]
        insert = self._inserter(plan, allowed)
        insert(1, [*(options.get("fallbacks") or ()),
                   *operation.configured_fallbacks(self.settings, requested)])
        position = 0
        while position < len(plan):
            group = plan[position]
            position += 1
            trail.fallbacks = position - 1
            try:
                targets = self.router.resolve(group)
            except ModelNotFoundError as exc:
                if position == 1:
                    raise
                trail.attempts.append(Attempt(group, exc))
                continue
            if self._exceeds_context(group, targets, params):
                trail.attempts.append(Attempt(group, InvalidRequestError(
                    f"the prompt is longer than {group}'s context window",
                    code="context_length_exceeded")))
                insert(position, self.settings.context_window_fallbacks[group])
                continue
            try:
                outcome = self._run_group(group, targets, params, options, deadline,
                                          retry_budget, trail, position == len(plan),
                                          "timeout" in options, operation)
            except ProxyError as exc:
                if not is_context_window_error(exc):
                    raise
                insert(position, self.settings.context_window_fallbacks.get(group, ()))
                outcome = None
            if outcome is not None:
                outcome.trail = trail
                return outcome
            if time.monotonic() >= deadline:
                break
        if trail.attempts:
            raise all_routes_failed(trail.attempts)
        raise timeout_error(requested, timeout)

    @staticmethod
    def _inserter(plan: list[str], allowed: tuple[str, ...]):
        """A function putting models into the plan at a position, skipping any already in it
        and any the caller may not use."""
        def insert(position: int, models) -> None:
            fresh = [m for m in dict.fromkeys(models)
                     if m not in plan and (not allowed or m in allowed)]
            plan[position:position] = fresh
        return insert

    def _exceeds_context(self, group: str, targets, params: dict[str, Any]) -> bool:
        """Known from the registry before the call; checked only where a larger model is
        configured (token counting costs time, and a provider's own limit is the final word)."""
        if group not in self.settings.context_window_fallbacks:
            return False
        window = min((t.info.get("context_window") or 0 for t in targets), default=0)
        if not window:
            return False
        messages = params.get("messages") or ()
        if sum(len(str(m.get("content") or "")) for m in messages) + 64 * len(messages) < window:
            return False  # a token is at least one character: cannot overflow
        return count_messages(targets[0].upstream_model, messages, params.get("tools"),
                              params.get("functions")) > window

    def _run_group(self, group: str, targets, params: dict[str, Any], options: dict[str, Any],
                   deadline: float, retry_budget: int, trail: Trail,
                   last_resort: bool, client_deadline: bool,
                   operation: Operation) -> Outcome | None:
        """Try one model's deployments; None when it cannot answer (the caller falls back)."""
        excluded: set[str] = set()
        retries = 0
        while True:
            target = self.pool.pick(targets, excluded, last_resort)
            if target is None:
                if not excluded:
                    trail.attempts.append(Attempt(group, UpstreamError(
                        f"every deployment of {group} is cooling down after failures",
                        provider="switchboard", status=503, code="deployments_cooling_down")))
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # The deployment's own time (its `timeout`, else the proxy's); a client's shorter
            # deadline may cut it short, and then a timeout is not the deployment's fault.
            allowance = float(target.settings.get("timeout") or self.settings.request_timeout)
            try:
                return self._attempt(target, params, options, min(remaining, allowance),
                                     client_deadline and remaining < allowance, operation,
                                     deadline if client_deadline else None,
                                     len(trail.attempts) + 1)
            except ProxyError as error:
                trail.attempts.append(Attempt(target.model, error))
                if is_context_window_error(error) or not falls_back(error):
                    raise
                excluded.add(target.deployment_id)
                if not is_retryable(error):
                    continue  # another deployment may have working credentials
                if retries >= retry_budget:
                    return None
                retries += 1
                trail.retries += 1
                if self.pool.pick(targets, excluded, last_resort) is not None:
                    continue  # another healthy deployment: no need to wait
                wait = backoff_seconds(retries - 1, getattr(error, "retry_after", None))
                if time.monotonic() + wait >= deadline:
                    return None
                time.sleep(wait)
                excluded.discard(target.deployment_id)

    def _attempt(self, target: Target, params: dict[str, Any], options: dict[str, Any],
                 timeout: float, cut_short: bool, operation: Operation,
                 ends_by: float | None, number: int) -> Outcome:
        """One call to one deployment, recorded in the pool's health state and in its own span
        (the request's `number`th attempt). A stream ends by `ends_by` (the request's own
        deadline, when it set a `timeout`)."""
        self.router.require_credentials(target)
        provider, call_params = operation.prepare(get_provider(target.provider), dict(params),
                                                  target)
        outcome = Outcome(None, target, passthrough=isinstance(provider, NativeView),
                          dropped_params=self._check_params(provider, call_params, target, options))
        self.pool.started(target)
        started = time.monotonic()
        span = spans.start_attempt(target, call_params, operation.name, number)
        try:
            with spans.current(span):
                if call_params.get("stream"):
                    chunks = self.upstream.stream(provider, call_params, target, timeout,
                                                  outcome, ends_by, operation.idle_every(provider))
                    outcome.chunks = self._tracked(chunks, target, started, span, outcome)
                else:
                    outcome.response = operation.call(self.upstream, provider, call_params,
                                                      target, timeout, outcome)
                    outcome.bill = operation.settle(target, call_params, outcome.response)
                    self.pool.finished(target, outcome.upstream_seconds)
                    spans.end_attempt(span, response=outcome.response)
        except ProxyError as error:
            spans.end_attempt(span, error)
            hold = getattr(error, "retry_after", None) if error.status == 429 else None
            self.pool.finished(target, None, error.message,
                               unhealthy=counts_against_deployment(error, cut_short), hold=hold)
            raise
        return outcome

    def _tracked(self, chunks: Iterator[dict], target: Target, started: float, span,
                 outcome: Outcome) -> Iterator[dict]:
        """Stream chunks, telling the pool (and the attempt's span) when the stream ends
        however it ends."""
        error = None
        try:
            yield from chunks
        except ClientDisconnected as exc:
            spans.end_attempt(span, exc)
            span = None
            raise  # the client's doing, not a failure of the deployment
        except ProxyError as exc:
            error = exc.message
            spans.end_attempt(span, exc)
            span = None
            raise
        finally:
            self.pool.finished(target, time.monotonic() - started, error)
            if span is not None:
                spans.end_attempt(span, response=outcome.stream and outcome.stream.completion())

    def _check_params(self, provider: Provider, params: dict[str, Any], target: Target,
                      options: dict[str, Any]) -> list[str]:
        dropped = provider.dropped_params(params, target)
        for key in dropped:
            params.pop(key)
        unsupported = provider.unsupported_params_for(params, target)
        if not unsupported:
            return dropped
        if options.get("drop_params", self.settings.drop_params):
            for key in unsupported:
                params.pop(key)
            return sorted(dropped + unsupported)
        names = ", ".join(unsupported)
        raise UnsupportedParamsError(
            f"provider {provider.name} (model {target.model_group!r}) does not support: {names}. "
            f"Remove it, or set drop_params: true to drop unsupported parameters.",
            param=unsupported[0])
