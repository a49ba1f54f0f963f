"""The spans the service and the key checks open inside a request's server span: one CLIENT
span per upstream attempt (retries and fallbacks are siblings), one per cache lookup and per
key check. Every function returns at once, doing nothing, when tracing is off.

Each costs the hot path as little as the SDK allows: spans are started with `start_span` and
made current (a context attach) only where something inside reads the current span, i.e. an
attempt whose `traceparent` goes upstream."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import cache, lru_cache
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from app import tracing
from app.tracing.attributes import (finish_reasons, operation_name, provider_name,
                                    request_attributes)

_propagate_upstream = False


def propagate_upstream(enabled: bool) -> None:
    """Config `otel.propagate_upstream`: send our `traceparent` to OpenAI-compatible upstreams."""
    global _propagate_upstream
    _propagate_upstream = enabled


@contextmanager
def step(name: str, **attributes: Any) -> Iterator[Any]:
    """An INTERNAL span around one step of the request (cache lookup, key check); an exception
    leaving the block is recorded on it as its status and an event."""
    tracer = tracing.tracer()
    if tracer is None:
        yield None
        return
    span = tracer.start_span(name, attributes=attributes or None)
    try:
        yield span
    except BaseException as exc:
        from opentelemetry.trace import Status, StatusCode
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()


_NOTHING = nullcontext()


def current(span):
    """`span` as the current span inside the block, so that the upstream call can name it in
    a `traceparent`; nothing (not even a generator) when tracing is off or nothing goes
    upstream."""
    if span is None or not _propagate_upstream:
        return _NOTHING
    return _current(span)


@contextmanager
def _current(span) -> Iterator[None]:
    from opentelemetry import context, trace
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


def start_attempt(target, params: Mapping[str, Any], api: str | None, number: int):
    """The CLIENT span of one call to one deployment; None when tracing is off or the
    request's trace is sampled out. Its attributes are computed once the span is known to
    record (so not for a trace sampled out), not passed to the sampler: the SDK's samplers
    do not read them."""
    tracer = tracing.tracer()
    if tracer is None:
        return None
    span = tracer.start_span(f"{operation_name(api)} {target.upstream_model}",
                             kind=_api().SpanKind.CLIENT)
    if not span.is_recording():
        return None
    attributes = request_attributes(target.upstream_model, params, api)
    attributes["switchboard.attempt"] = number
    attributes["switchboard.deployment"] = target.deployment_id
    attributes["switchboard.model"] = target.model
    provider = provider_name(target.provider)
    if provider:
        attributes["gen_ai.provider.name"] = provider
    host = _host(target.api_base)
    if host:
        attributes["server.address"] = host
    span.set_attributes(attributes)
    return span


@cache
def _api():
    """opentelemetry.trace, imported once tracing is on (not at start when it is off)."""
    from opentelemetry import trace
    return trace


@lru_cache(maxsize=256)
def _host(api_base: str | None) -> str | None:
    """`server.address`: the deployment's host (a handful of bases, parsed once each)."""
    return urlsplit(api_base).hostname if api_base else None


def end_attempt(span, error=None, response: Mapping[str, Any] | None = None) -> None:
    """Close an attempt's span: the answer it got, or its failure as status and event."""
    if span is None:
        return
    if error is not None:
        from opentelemetry.trace import Status, StatusCode
        span.set_attribute("error.type", getattr(error, "type", type(error).__name__))
        status = getattr(error, "upstream_status", None) or getattr(error, "status", None)
        if status:
            span.set_attribute("http.response.status_code", int(status))
        message = getattr(error, "message", str(error))
        span.add_event("exception", {"exception.type": getattr(error, "type", "error"),
                                     "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, message))
    elif response:
        usage = response.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        # Read now (the answer is not kept until the export), described at the export.
        span.set_attributes_later(_answer_attributes, (
            response.get("model"), response.get("id"), finish_reasons(response),
            usage.get("prompt_tokens"), usage.get("completion_tokens")))
    span.end()


def _answer_attributes(answer: tuple) -> dict:
    model, answer_id, reasons, input_tokens, output_tokens = answer
    attributes: dict[str, Any] = {}
    if model:
        attributes["gen_ai.response.model"] = model
    if answer_id:
        attributes["gen_ai.response.id"] = answer_id
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if isinstance(input_tokens, int):
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if isinstance(output_tokens, int):
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    return attributes


def upstream_headers() -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming the current attempt's span, when the operator
    asked for it (`otel.propagate_upstream`); nothing otherwise."""
    global _propagator
    if not _propagate_upstream or tracing.tracer() is None:
        return {}
    if _propagator is None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        _propagator = TraceContextTextMapPropagator()
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


_propagator = None
