"""LeanSpan: the proxy's recording span (app/tracing/lean_sdk.py starts them), one object whose
attributes are a plain dict filled in one pass (values other than plain ones, and span limits
on value length, take the SDK's own checks), ended in place: the batch processor and
app/tracing/wire.py read it as they read the SDK's ReadableSpan. Used by the one request
that opened it, and read by the exporter only once ended, so it holds no lock.
"""
from __future__ import annotations

import logging
from time import time_ns
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from app.tracing.lean_sdk import LeanTracer

log = logging.getLogger("switchboard")
_PLAIN = frozenset((str, int, float, bool))
_SEQUENCES = frozenset((list, tuple))
_UNSET = Status(StatusCode.UNSET)


class LeanSpan(trace_api.Span):
    """A recording span; once ended, also what the processors and exporters read (the
    ReadableSpan attributes: name, context, parent, kind, times, attributes, events, links,
    status, resource, instrumentation_scope, dropped counts)."""

    __slots__ = ("name", "context", "parent", "kind", "start_time", "end_time", "_attributes",
                 "_later", "events", "links", "status", "_dropped_attributes", "dropped_events",
                 "dropped_links", "_tracer", "_record_exception", "_set_status_on_exception")

    def __init__(self, name: str, context: SpanContext, parent: SpanContext | None,
                 kind: SpanKind, tracer: LeanTracer, record_exception: bool,
                 set_status_on_exception: bool):
        self.name, self.context, self.parent, self.kind = name, context, parent, kind
        self.start_time = self.end_time = None
        self._attributes: dict[str, Any] = {}
        self._later: list | None = None  # (compute, facts) pairs: set_attributes_later
        self.events: Sequence = ()  # a list from the first event (most spans have none)
        self.links: Sequence = ()
        self.status = _UNSET
        self._dropped_attributes = self.dropped_events = self.dropped_links = 0
        self._tracer = tracer
        self._record_exception, self._set_status_on_exception = (record_exception,
                                                                 set_status_on_exception)

    @property
    def resource(self):
        return self._tracer._sdk.resource

    @property
    def instrumentation_scope(self):
        return self._tracer._sdk._instrumentation_scope  # pylint: disable=protected-access

    def get_span_context(self) -> SpanContext:
        return self.context

    def is_recording(self) -> bool:
        return self.end_time is None

    def _ended(self, what: str) -> bool:
        if self.end_time is None:
            return False
        log.debug("%s on an ended span %s ignored", what, self.name)
        return True

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The span's attributes; those set to be computed later are computed at the first
        read once the span has ended (the exporter's, off the request's path)."""
        if self._later is not None:
            self._compute_later()
        return self._attributes

    @property
    def dropped_attributes(self) -> int:
        if self._later is not None:
            self._compute_later()
        return self._dropped_attributes

    def _compute_later(self) -> None:
        if self.end_time is not None:
            later, self._later = self._later, None
            for compute, facts in later:
                self._merge(compute(facts))

    def set_attribute(self, key: str, value: Any) -> None:
        self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """As the SDK's span: invalid entries left out, an existing key moved last, the oldest
        entry dropped (and counted) beyond the span's attribute limit."""
        if not self._ended("set_attributes"):
            self._merge(attributes)

    def set_attributes_later(self, compute: Callable[[Any], Mapping[str, Any]],
                             facts: Any) -> None:
        """`compute(facts)`'s attributes, set (as by set_attributes, after the others) only
        when the ended span is read: what a request's path need not build. `facts` must not
        change once given."""
        if self._ended("set_attributes_later"):
            return
        if self._later is None:
            self._later = [(compute, facts)]
        else:
            self._later.append((compute, facts))

    def _merge(self, attributes: Mapping[str, Any]) -> None:
        limits = self._tracer._limits
        longest = limits.max_span_attribute_length
        clean = _plain(attributes) if longest is None else None
        if clean is None:
            clean = BoundedAttributes(None, attributes, max_value_len=longest)
            self._dropped_attributes += clean.dropped  # invalid keys
        entries, most = self._attributes, limits.max_span_attributes
        if not entries and clean.__class__ is dict and (most is None or len(clean) <= most):
            self._attributes = clean  # the first attributes, a fresh dict: taken as they are
            return
        for key, value in clean.items():
            if key in entries:
                del entries[key]
            elif most is not None and len(entries) >= most:
                if most == 0:
                    self._dropped_attributes += 1
                    continue
                del entries[next(iter(entries))]
                self._dropped_attributes += 1
            entries[key] = value

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self._ended("add_event"):
            return
        limits = self._tracer._limits
        event = sdk_trace.Event(name, BoundedAttributes(
            limits.max_event_attributes, attributes, max_value_len=limits.max_attribute_length,
            immutable=True), timestamp)
        self.events, dropped = _appended(self.events, event, limits.max_events)
        self.dropped_events += dropped

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._ended("add_link") or not sdk_trace._is_valid_link(context, attributes):  # pylint: disable=protected-access
            return
        limits = self._tracer._limits
        link = trace_api.Link(context, BoundedAttributes(
            limits.max_link_attributes, attributes, max_value_len=limits.max_attribute_length,
            immutable=True))
        self.links, dropped = _appended(self.links, link, limits.max_links)
        self.dropped_links += dropped

    def update_name(self, name: str) -> None:
        if not self._ended("update_name"):
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's span: an OK status is final, and UNSET changes nothing."""
        if self._ended("set_status") or self.status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self.status = status

    # The SDK span's own: builds the `exception` event's attributes, then calls add_event.
    record_exception = sdk_trace.Span.record_exception

    def end(self, end_time: int | None = None) -> None:
        if self._ended("end"):
            return
        self.end_time = end_time if end_time is not None else time_ns()
        _, endings, ends = self._tracer._hooks()
        for on_ending in endings:
            on_ending(self)
        for on_end in ends:
            on_end(self)

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if exc_val is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


def _appended(items: Sequence, item: Any, most: int | None) -> tuple[list, int]:
    """(`items` with `item` appended, how many fell out): beyond `most` the oldest go, as from
    the SDK's bounded lists (with `most` 0, nothing is kept). A list from the first item on."""
    if items.__class__ is not list:
        items = list(items)
    items.append(item)
    dropped = max(0, len(items) - most) if most is not None else 0
    del items[:dropped]
    return items, dropped


def _plain(attributes: Mapping[str, Any]) -> dict | None:
    """`attributes` as the SDK would store them when all are plain (non-empty string keys,
    str / int / float / bool values or lists of them), or None when one needs its checks."""
    plain = {}
    for key, value in attributes.items():
        kind = value.__class__
        if key.__class__ is not str or not key:
            return None
        if kind in _PLAIN:
            plain[key] = value
        elif kind in _SEQUENCES and all(item.__class__ in _PLAIN for item in value):
            plain[key] = tuple(value)
        else:
            return None
    return plain
