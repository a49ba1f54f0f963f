"""The completion service: the library API and what the HTTP endpoint calls.

It resolves the model, checks parameters against the provider, sends the provider's
wire request, follows multi-step protocols, and maps every failure to a ProxyError.
"""
from __future__ import annotations

import re
import time
from itertools import chain
from dataclasses import dataclass, field
from typing import Any, Iterator

from app.config import Settings, load_settings
from app.errors import InvalidRequestError, ProxyError, UnsupportedParamsError, UpstreamError
from app.jsonfast import loads
from app.providers import get_provider
from app.providers.base import FollowUp, Provider, Target, UpstreamResponse
from app.registry import ModelRegistry, load_registry
from app.service.router import Router
from app.service.streaming import ChunkStream, read_events
from app.service.transport import Transport, TransportError

# Body fields the proxy itself consumes; never sent upstream.
PROXY_FIELDS = ("fallbacks", "cache", "metadata", "drop_params", "num_retries", "timeout",
                "context_window_fallbacks", "mock_response")
# Upstream connection settings a client may not choose (no request forgery through the proxy).
CONNECTION_FIELDS = ("api_base", "base_url", "api_key", "api_version", "organization",
                     "extra_headers")

_KEY_PATTERN = re.compile(r"\b(sk|r8|hf|sk-ant|AIza)[-_A-Za-z0-9*.]{8,}")


@dataclass
class Outcome:
    """What one completion produced, plus the facts the endpoint reports in headers."""

    response: dict[str, Any] | None
    target: Target
    upstream_seconds: float = 0.0
    dropped_params: list[str] = field(default_factory=list)
    chunks: Iterator[dict] | None = None   # set instead of `response` when streaming


def scrub(text: str, *secrets: str | None) -> str:
    """Remove key material from text that came from outside (upstream error messages)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class CompletionService:
    def __init__(self, settings: Settings | None = None, registry: ModelRegistry | None = None,
                 transport: Transport | None = None):
        self.settings = settings or load_settings()
        self.registry = registry or load_registry()
        self.router = Router(self.settings, self.registry)
        self.transport = transport or Transport(connect_timeout=self.settings.connect_timeout)

    def complete(self, body: dict[str, Any]) -> Outcome:
        """Run one chat completion request given in OpenAI's JSON shape."""
        params = dict(body)
        options = {key: params.pop(key) for key in PROXY_FIELDS if key in params}
        for key in CONNECTION_FIELDS:
            if key in params:
                raise InvalidRequestError(
                    f"'{key}' cannot be set in a request: upstream connection settings come from "
                    f"the proxy's configuration", param=key, code="forbidden_param")
        model = params.pop("model")
        target = self.router.resolve(model)[0]
        self.router.require_credentials(target)
        provider = get_provider(target.provider)
        dropped = self._check_params(provider, params, target, options)
        timeout = float(options.get("timeout") or target.settings.get("timeout")
                        or self.settings.request_timeout)
        outcome = Outcome(None, target, dropped_params=dropped)
        if params.get("stream"):
            outcome.chunks = self._stream(provider, params, target, timeout, outcome)
        else:
            outcome.response = self._call(provider, params, target, timeout, outcome)
        return outcome

    def _check_params(self, provider: Provider, params: dict[str, Any], target: Target,
                      options: dict[str, Any]) -> list[str]:
        unsupported = provider.unsupported_params(params)
        if not unsupported:
            return []
        if options.get("drop_params", self.settings.drop_params):
            for key in unsupported:
                params.pop(key)
            return unsupported
        names = ", ".join(unsupported)
        raise UnsupportedParamsError(
            f"provider {provider.name} (model {target.model_group!r}) does not support: {names}. "
            f"Remove it, or set drop_params: true to drop unsupported parameters.",
            param=unsupported[0])

    def _call(self, provider: Provider, params: dict[str, Any], target: Target, timeout: float,
              outcome: Outcome) -> Any:
        """Send the provider's request and follow its FollowUps; a stream request is returned unsent."""
        deadline = time.monotonic() + timeout
        request = provider.build_request(params, target)
        while True:
            if request.stream:
                return request
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error(provider, timeout)
            try:
                raw = self.transport.send(request, remaining)
            except TransportError as exc:
                raise self._transport_error(provider, exc, timeout) from None
            outcome.upstream_seconds += raw.seconds
            payload = self._decode(provider, raw.data, raw.status)
            if raw.status >= 400:
                raise self._scrubbed(provider.upstream_error(raw.status, payload, raw.headers),
                                     target)
            try:
                result = provider.parse_response(UpstreamResponse(raw.status, raw.headers, payload),
                                                 params, target)
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

    def _stream(self, provider: Provider, params: dict[str, Any], target: Target, timeout: float,
                outcome: Outcome) -> Iterator[dict]:
        """Open the upstream stream and read up to the first chunk, so that an early failure is
        still a plain HTTP error; the rest is read as the client consumes it."""
        started = time.perf_counter()
        request = self._call(provider, params, target, timeout, outcome)
        stall = min(timeout, self.settings.stream_timeout)
        try:
            response = self.transport.open_stream(request, stall)
        except TransportError as exc:
            raise self._transport_error(provider, exc, timeout) from None
        if response.status >= 400:
            data = response.read()
            response.release_conn()
            payload = self._decode(provider, data, response.status)
            raise self._scrubbed(provider.upstream_error(response.status, payload,
                                                         response.headers), target)
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        stream = ChunkStream(provider.name, target.upstream_model, include_usage)
        events = read_events(response, provider.stream_format, provider, stall)
        chunks = self._guarded(stream.chunks(events, provider.stream_translator(params, target)),
                               response, provider, target)
        first = next(chunks, None)
        outcome.upstream_seconds += time.perf_counter() - started
        return chain(() if first is None else (first,), chunks)

    def _guarded(self, chunks: Iterator[dict], response, provider: Provider,
                 target: Target) -> Iterator[dict]:
        """Map failures to ProxyErrors and always free the upstream connection, even when the
        client goes away mid-stream (the generator is closed then)."""
        finished = False
        try:
            yield from chunks
            finished = True
        except ProxyError as exc:
            raise self._scrubbed(exc, target) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UpstreamError(f"{provider.name} sent a stream event this proxy cannot read: "
                                f"{exc}", provider=provider.name, status=502) from None
        finally:
            if not finished:
                response.close()
            response.release_conn()

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
        return UpstreamError(f"{provider.name} did not answer within {timeout:g} s",
                             provider=provider.name, status=504, type="timeout_error",
                             code="upstream_timeout")

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
