"""One call to one deployment: send the provider's request, follow its FollowUps, open and
guard its stream, and map every failure to an UpstreamError that carries no key.

Every request, the first and each FollowUp (URLs an upstream hands back, such as
Replicate's `urls.get` / `urls.stream`), is admitted by `app.service.egress.route`: same
origin as the deployment's api_base, or the provider's documented host after the
public-address check.
"""
from __future__ import annotations

import re
import time
from itertools import chain
from typing import Any, Iterator

from app.errors import InvalidRequestError, ProxyError, UpstreamError
from app.jsonfast import loads
from app.providers import get_provider
from app.providers.base import FollowUp, Provider, Target, UpstreamRequest, UpstreamResponse
from app.providers.openai import OpenAIProvider
from app.service.accounting import settle
from app.service.egress import Route, UnsafeUpstream, route
from app.service.outcome import Outcome
from app.service.streaming import ChunkStream, read_events
from app.service.transport import Transport, TransportError
from app.tracing import spans

# Provider key shapes; "sk" also covers this proxy's virtual keys (sk-sb-...).
_KEY_PATTERN = re.compile(r"\b(sk|r8|hf|sk-ant|AIza)[-_A-Za-z0-9*.]{8,}")
_PROXY_SECRETS: list[str] = []  # the proxy's own secrets of any shape (the master key)


def protect_secret(secret: str) -> None:
    """Scrub `secret` from upstream text too; called at start for the master key."""
    if secret and secret not in _PROXY_SECRETS:
        _PROXY_SECRETS.append(secret)


def scrub(text: str, *secrets: str | None) -> str:
    """Remove key material from text that came from outside (upstream error messages)."""
    for secret in (*secrets, *_PROXY_SECRETS):
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class UpstreamCaller:
    def __init__(self, transport: Transport, stream_timeout: float):
        self.transport = transport
        self.stream_timeout = stream_timeout

    def call(self, provider: Provider, params: dict[str, Any], target: Target, timeout: float,
              outcome: Outcome) -> Any:
        """Send the provider's request and follow its FollowUps; a stream request is returned unsent."""
        deadline = time.monotonic() + timeout
        request = provider.build_request(params, target)
        if isinstance(get_provider(target.provider), OpenAIProvider):
            request.headers.update(spans.upstream_headers())  # otel.propagate_upstream
        while True:
            if request.stream:
                return request
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error(provider, timeout)
            try:
                raw = self.transport.send(request, remaining, self._route(provider, request, target))
            except TransportError as exc:
                raise self._transport_error(provider, exc, timeout) from None
            except UnsafeUpstream as exc:
                raise self._unsendable(provider, exc) from None
            outcome.upstream_seconds += raw.seconds
            payload = self._decode(provider, raw.data, raw.status)
            # An error that only means "not yet" (a model still loading) comes back as a FollowUp.
            retry = (provider.retry_after_error(raw.status, payload, request)
                     if raw.status >= 400 else None)
            if raw.status >= 400 and retry is None:
                raise self._scrubbed(provider.reported(
                    provider.upstream_error(raw.status, payload, raw.headers)), target)
            try:
                result = retry or provider.parse_response(
                    UpstreamResponse(raw.status, raw.headers, payload, request), params, target)
            except UpstreamError as exc:
                raise self._scrubbed(exc, target) from None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UpstreamError(f"{provider.name} sent an answer this proxy cannot read: {exc}",
                                    provider=provider.name, status=502) from None
            if not isinstance(result, FollowUp):
                return result
            if result.delay:
                time.sleep(max(0.0, min(result.delay, deadline - time.monotonic())))
            request = result.request
            request.from_upstream = True

    def stream(self, provider: Provider, params: dict[str, Any], target: Target, timeout: float,
                outcome: Outcome, ends_by: float | None = None,
                idle_every: float | None = None) -> Iterator[dict]:
        """Open the upstream stream and read up to the first chunk, so that an early failure is
        still a plain HTTP error; the rest is read as the client consumes it, until `ends_by`
        (a time.monotonic() value) when given. With `idle_every`, streaming.IDLE comes
        whenever the upstream has been silent that long, also before the first chunk (the
        response then starts, and a later failure is in-band)."""
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        request = self.call(provider, params, target, timeout, outcome)
        stall = min(timeout, self.stream_timeout)
        while True:
            try:
                response = self.transport.open_stream(request, stall,
                                                      self._route(provider, request, target))
            except TransportError as exc:
                raise self._transport_error(provider, exc, timeout) from None
            except UnsafeUpstream as exc:
                raise self._unsendable(provider, exc) from None
            if response.status < 400:
                break
            data = response.read()
            response.close()
            payload = self._decode(provider, data, response.status)
            retry = provider.retry_after_error(response.status, payload, request)
            if retry is None or time.monotonic() + retry.delay >= deadline:
                raise self._scrubbed(provider.reported(provider.upstream_error(
                    response.status, payload, response.headers)), target)
            time.sleep(retry.delay)
            request = retry.request
            request.from_upstream = True
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        stream = ChunkStream(provider.name, target.upstream_model, include_usage,
                             lambda completion: settle(target, params, completion))
        outcome.stream, outcome.upstream = stream, response
        events = read_events(response, provider.stream_format, provider, stall, ends_by,
                             idle_every)
        chunks = self._guarded(stream.chunks(events, provider.stream_translator(params, target)),
                               response, provider, target)
        first = next(chunks, None)
        outcome.upstream_seconds += time.perf_counter() - started
        return chain(() if first is None else (first,), chunks)

    def _guarded(self, chunks: Iterator[dict], response, provider: Provider,
                 target: Target) -> Iterator[dict]:
        """Map failures to ProxyErrors and always free the upstream connection, even when the
        client goes away mid-stream (the generator is closed then)."""
        try:
            yield from chunks
        except ProxyError as exc:
            raise self._scrubbed(provider.reported(exc), target) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"{provider.name} sent a stream event this proxy cannot read: "
                                f"{exc}", provider=provider.name, status=502) from None
        finally:
            response.close()

    @classmethod
    def _route(cls, provider: Provider, request: UpstreamRequest, target: Target) -> Route:
        """Where the request may go. A refused follow-up URL is the upstream's fault (502);
        a refused first URL was built from the request (a model name): 400."""
        try:
            return route(request.url, target, provider.default_base)
        except UnsafeUpstream as exc:
            if not request.from_upstream:
                raise cls._unsendable(provider, exc, "its URL ") from None
            raise UpstreamError(f"{provider.name} request refused: its URL {exc}",
                                provider=provider.name, status=502,
                                code="upstream_url_refused") from None

    @staticmethod
    def _unsendable(provider: Provider, exc: UnsafeUpstream, what: str = "") -> InvalidRequestError:
        return InvalidRequestError(f"{provider.name} request refused: {what}{exc}",
                                   code="invalid_upstream_value")

    @staticmethod
    def _decode(provider: Provider, data: bytes, status: int) -> Any:
        try:
            return loads(data) if data else None
        except ValueError:
            if status >= 400:
                return {"error": {"message": data[:200].decode("utf-8", "replace")}}
            raise UpstreamError(f"{provider.name} sent a body that is not JSON",
                                provider=provider.name, status=502) from None

    @staticmethod
    def _timeout_error(provider: Provider, timeout: float) -> UpstreamError:
        return timeout_error(provider.name, timeout)

    def _transport_error(self, provider: Provider, exc: TransportError,
                         timeout: float) -> UpstreamError:
        if exc.timed_out:
            return self._timeout_error(provider, timeout)
        return UpstreamError(f"{provider.name} could not be reached: {exc}",
                             provider=provider.name, status=502, code="upstream_unreachable")

    @staticmethod
    def _scrubbed(error: ProxyError, target: Target) -> ProxyError:
        error.message = scrub(error.message, target.api_key)
        return error


def timeout_error(name: str, timeout: float) -> UpstreamError:
    return UpstreamError(f"{name} did not answer within {timeout:g} s", provider=name,
                         status=504, type="timeout_error", code="upstream_timeout")
