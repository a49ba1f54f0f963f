"""The server span of each request: opened when the request reaches the app, continuing the
client's W3C `traceparent` / `tracestate`, closed when the last byte of the answer has gone
(so a stream's span lasts as long as the stream), with the request's outcome from its event.

Installed only when tracing is on (app/tracing); the proxy then answers with its own
`traceparent`, and the request id and the trace are linked both ways.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from flask import Flask, g, request
from marshmallow import Schema, fields

from app import tracing
from app.tracing import spans
from app.tracing.attributes import outcome, outcome_attributes

SPAN_KEY = "switchboard.span"  # WSGI environ: the request's server span
REQUEST_ID_KEY = "switchboard.request_id"  # WSGI environ: the id the span is known by
TRACE_IDS_KEY = "switchboard.trace_ids"  # WSGI environ: the span's ids in hex, for the logs
ATTRIBUTES_KEY = "switchboard.span_attributes"  # WSGI environ: set on the span when it ends
NAME_KEY = "switchboard.span_name"  # WSGI environ: the span's name by its route, if not its path


class OtelSection(Schema):
    """Config `otel:`: what spans may carry beyond the defaults."""

    capture_messages = fields.Boolean(load_default=False)
    propagate_upstream = fields.Boolean(load_default=False)


class _EnvironGetter:
    """W3C trace headers read straight from the WSGI environ."""

    def get(self, environ: dict, key: str) -> list[str] | None:
        value = environ.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, environ: dict) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_")]


class ServerSpans:
    """WSGI middleware: one SERVER span per request, current while the app computes the
    answer (so the service's spans are its children), ended when the body is closed. What is
    learnt on the way (request id, status code) waits in the environ and reaches the span in
    one call when it ends."""

    def __init__(self, app, on_end: Callable[[dict], None]):
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        self.app, self.on_end = app, on_end
        self.context, self.trace = context, trace
        self.root = context.Context()  # the parent of a request that sent no `traceparent`
        self.propagator = TraceContextTextMapPropagator()
        self.getter = _EnvironGetter()

    def __call__(self, environ, start_response):
        trace = self.trace
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        # Most clients send no `traceparent`: the span is then a root, with nothing to parse.
        parent = (self.propagator.extract(environ, getter=self.getter)
                  if "HTTP_TRACEPARENT" in environ else self.root)
        span = tracing.tracer().start_span(f"{method} {path}", context=parent,
                                           kind=trace.SpanKind.SERVER)
        environ[SPAN_KEY] = span
        # A SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags,
        # trace_state, is_valid): unpacked at once rather than read through properties.
        trace_id, span_id, _, flags, trace_state, _ = span.get_span_context()
        trace_hex, span_hex = f"{trace_id:032x}", f"{span_id:016x}"
        environ[TRACE_IDS_KEY] = {"trace_id": trace_hex, "span_id": span_hex}
        environ[ATTRIBUTES_KEY] = learnt = {"http.request.method": method, "url.path": path}
        ours = [("traceparent", f"00-{trace_hex}-{span_hex}-{flags:02x}")]
        if trace_state:
            ours.append(("tracestate", trace_state.to_header()))

        def traced_start_response(status, headers, exc_info=None):
            code = learnt["http.response.status_code"] = int(status.split(None, 1)[0])
            if code >= 500:
                span.set_status(trace.Status(trace.StatusCode.ERROR))
            return start_response(status, [*headers, *ours], exc_info)

        token = self.context.attach(trace.set_span_in_context(span, parent))
        try:
            body = self.app(environ, traced_start_response)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            self._end(environ, span)
            raise
        finally:
            self.context.detach(token)
        return _EndsSpan(body, self, environ, span)

    def _end(self, environ: dict, span) -> None:
        try:
            self.on_end(environ)
        finally:
            if NAME_KEY in environ:
                span.update_name(environ[NAME_KEY])
            span.set_attributes(environ[ATTRIBUTES_KEY])
            span.end()


class _EndsSpan:
    """The answer's body; closing it (after the last byte, or a client that left) ends the span."""

    def __init__(self, body: Iterable[bytes], middleware: ServerSpans, environ: dict, span):
        self.body, self.middleware, self.environ, self.span = body, middleware, environ, span

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.middleware._end(self.environ, self.span)


class _OpenSpans:
    """Server spans by request id, so that the request's event (published by the service,
    which knows nothing of HTTP) can describe its outcome on the span: what the event tells
    is read now, and becomes attributes when the span is exported."""

    def __init__(self, capture_messages: bool):
        self.capture_messages = capture_messages
        self._spans: dict[str, Any] = {}  # one get, set or pop at a time: atomic, no lock

    def open(self, request_id: str, span) -> None:
        self._spans[request_id] = span

    def close(self, request_id: str | None) -> None:
        self._spans.pop(request_id, None)

    def describe(self, event) -> None:
        """Event subscriber: the outcome onto the request's span."""
        span = self._spans.get(event.request_id)
        if span is None or not span.is_recording():  # sampled out: nothing to describe
            return
        span.set_attributes_later(outcome_attributes, outcome(event, self.capture_messages))
        if event.ttft_ms is not None and getattr(span, "start_time", None):
            span.add_event("gen_ai.first_token", {"switchboard.ttft_ms": event.ttft_ms},
                           timestamp=span.start_time + int(event.ttft_ms * 1_000_000))
        if event.error_type is not None:
            from opentelemetry import trace
            span.set_status(trace.Status(trace.StatusCode.ERROR, event.error_message))
            span.add_event("exception", {"exception.type": event.error_type,
                                         "exception.message": event.error_message or ""})


def install(app: Flask, service) -> None:
    settings = service.settings
    options = settings.section("otel", OtelSection())
    if not tracing.configure(settings.env):
        return
    spans.propagate_upstream(options["propagate_upstream"])
    open_spans = _OpenSpans(options["capture_messages"] and not settings.redact_messages)
    service.events.subscribe(open_spans.describe)

    @app.before_request
    def _link_request_and_trace():
        # The request and `g` themselves, not their proxies: each read through a proxy is
        # three calls.
        req, context = request._get_current_object(), g._get_current_object()
        environ = req.environ
        span = environ.get(SPAN_KEY)
        if span is None:
            return
        rule = req.url_rule
        if rule is not None and rule.rule != req.path:
            environ[NAME_KEY] = f"{req.method} {rule.rule}"
        attributes = environ[ATTRIBUTES_KEY]
        request_id = attributes["switchboard.request_id"] = environ[REQUEST_ID_KEY] = context.request_id
        context.trace_ids = environ[TRACE_IDS_KEY]
        open_spans.open(request_id, span)

    app.wsgi_app = ServerSpans(app.wsgi_app,
                               lambda environ: open_spans.close(environ.get(REQUEST_ID_KEY)))
