"""The spans the service and the key checks open inside a request's server span: one CLIENT
span per upstream attempt (retries and fallbacks are siblings), one per cache lookup and per
key check. Every function returns at once, doing nothing, when tracing is off."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from app import tracing
from app.tracing.attributes import provider_name, request_attributes

_propagate_upstream = False


def propagate_upstream(enabled: bool) -> None:
    """Config `otel.propagate_upstream`: send our `traceparent` to OpenAI-compatible upstreams."""
    global _propagate_upstream
    _propagate_upstream = enabled


@contextmanager
def step(name: str, **attributes: Any) -> Iterator[Any]:
    """An INTERNAL span around one step of the request (cache lookup, key check)."""
    tracer = tracing.tracer()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


@contextmanager
def current(span) -> Iterator[None]:
    """`span` as the current span inside the block (so the upstream call can name it in a
    `traceparent`); nothing when tracing is off."""
    if span is None:
        yield
        return
    from opentelemetry import trace
    with trace.use_span(span, end_on_exit=False, record_exception=False,
                        set_status_on_exception=False):
        yield


def start_attempt(target, params: Mapping[str, Any], api: str | None, number: int):
    """The CLIENT span of one call to one deployment; None when tracing is off."""
    tracer = tracing.tracer()
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind
    attributes = request_attributes(target.upstream_model, params, api)
    attributes.update({"switchboard.attempt": number, "switchboard.deployment": target.deployment_id,
                       "switchboard.model": target.model, "switchboard.model_group": target.model_group})
    provider = provider_name(target.provider)
    if provider:
        attributes["gen_ai.provider.name"] = provider
    if target.api_base:
        host = urlsplit(target.api_base).hostname
        if host:
            attributes["server.address"] = host
    name = f"{attributes['gen_ai.operation.name']} {target.upstream_model}"
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def end_attempt(span, error=None, response: Mapping[str, Any] | None = None) -> None:
    """Close an attempt's span: the answer it got, or its failure as status and event."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode
    if error is not None:
        span.set_attribute("error.type", getattr(error, "type", type(error).__name__))
        status = getattr(error, "upstream_status", None) or getattr(error, "status", None)
        if status:
            span.set_attribute("http.response.status_code", int(status))
        message = getattr(error, "message", str(error))
        span.add_event("exception", {"exception.type": getattr(error, "type", "error"),
                                     "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, message))
    elif response:
        span.set_attributes(_answer_attributes(response))
    span.end()


def _answer_attributes(response: Mapping[str, Any]) -> dict:
    attributes: dict[str, Any] = {}
    if response.get("model"):
        attributes["gen_ai.response.model"] = response["model"]
    if response.get("id"):
        attributes["gen_ai.response.id"] = response["id"]
    reasons = [c.get("finish_reason") for c in response.get("choices") or ()
               if isinstance(c, dict) and c.get("finish_reason")]
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    usage = response.get("usage") or {}
    for ours, theirs in (("prompt_tokens", "gen_ai.usage.input_tokens"),
                         ("completion_tokens", "gen_ai.usage.output_tokens")):
        if isinstance(usage.get(ours), int):
            attributes[theirs] = usage[ours]
    return attributes


def upstream_headers() -> dict[str, str]:
    """`traceparent` naming the current attempt's span, when the operator asked for it
    (`otel.propagate_upstream`); nothing otherwise."""
    if not _propagate_upstream or tracing.tracer() is None:
        return {}
    return w3c_headers()


def w3c_headers(context=None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) for `context`, or for the current span."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=context)
    return carrier
