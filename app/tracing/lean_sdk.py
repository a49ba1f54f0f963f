"""The proxy's spans: the OpenTelemetry API's `Span`, started by the official SDK's provider
(its sampler, id generator, resource, span limits and span processors, all configured by
the standard OTEL_* variables), but without the SDK span's own machinery.

A traced request makes two to five spans, and the SDK's span class was most of what tracing
cost the request's path: four locks per span (gevent's under gevent), a recursive type check
then a locked insert per attribute, events and links in lock-guarded lists, and the ended
span copied into a ReadableSpan for the processors. A `LeanSpan` is one object whose
attributes are a plain dict filled in one pass (values other than plain ones, and span
limits on value length, take the SDK's own checks), ended in place: the batch processor and
app/tracing/wire.py read it as they read the SDK's ReadableSpan. Spans are used by the one
request that opened them, and read by the exporter only once ended, so they hold no lock.
tests/test_tracing_lean_sdk.py holds what a LeanSpan records to what the SDK's span records
for the same calls.
"""
from __future__ import annotations

import logging
import os
import types
from random import getrandbits
from time import time_ns
from typing import Any, Callable, Mapping, Sequence

from opentelemetry import trace as trace_api
from opentelemetry.context import get_current
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

log = logging.getLogger("switchboard")
_PLAIN = frozenset((str, int, float, bool))
_SEQUENCES = frozenset((list, tuple))
_UNSET = Status(StatusCode.UNSET)
_FLAGS = {(sampled, random): TraceFlags((TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
                                        | (TraceFlags.RANDOM_TRACE_ID if random else 0))
          for sampled in (False, True) for random in (False, True)}
# The SDK's span processor hooks that do nothing: not called.
_IDLE_HOOKS = frozenset((SpanProcessor.on_start, SpanProcessor._on_ending,  # pylint: disable=protected-access
                         BatchSpanProcessor.on_start, BatchSpanProcessor._on_ending,  # pylint: disable=protected-access
                         SimpleSpanProcessor.on_start, SimpleSpanProcessor._on_ending))  # pylint: disable=protected-access


def install() -> None:
    """Once per process, before the first span: the batch processor's pid check (`_known_pid`)."""
    import opentelemetry.sdk._shared_internal as batching
    if not isinstance(batching.os, types.SimpleNamespace):
        _known_pid(batching)


def _known_pid(batching) -> None:
    """`os.getpid()` is a system call, and the batch processor makes it for every span it is
    given (an eighth of its cost under load); the pid is known here instead, and renewed in
    a forked child before any of its code runs (fork hooks run in the order they were
    registered, and this one is registered before any batch processor's)."""
    pid = [os.getpid()]

    def renew() -> None:
        pid[0] = os.getpid()

    os.register_at_fork(after_in_child=renew)
    batching.os = types.SimpleNamespace(**{**vars(os), "getpid": lambda: pid[0]})


class LeanTracer(trace_api.Tracer):
    """Starts LeanSpans as `sdk_tracer` (the provider's, for one scope) starts its spans: the
    same parent, sampling decision, ids, trace flags and span processors."""

    def __init__(self, sdk_tracer: sdk_trace.Tracer):
        self._sdk = sdk_tracer
        self._limits = sdk_tracer._span_limits  # pylint: disable=protected-access
        # Fixed for the provider's life (its processors are added to this same object).
        self._sampler, self._ids = sdk_tracer.sampler, sdk_tracer.id_generator
        self._decisions = _decisions_by_parent(self._sampler)
        self._random_ids = type(self._ids) is RandomIdGenerator  # the default: drawn here
        self._processor = sdk_tracer.span_processor
        self._hooks = _Hooks(self._processor)

    def start_span(self, name: str, context=None, kind: SpanKind = SpanKind.INTERNAL,
                   attributes: Mapping[str, Any] | None = None, links: Sequence = (),
                   start_time: int | None = None, record_exception: bool = True,
                   set_status_on_exception: bool = True) -> trace_api.Span:
        current = (context if context is not None else get_current()).get(_SPAN_KEY)
        if current.__class__ is LeanSpan:
            parent = current.context
        elif current is not None and isinstance(current, trace_api.Span):
            parent = current.get_span_context()
        else:
            parent = trace_api.INVALID_SPAN_CONTEXT
        if not self._sdk._is_enabled():  # pylint: disable=protected-access
            return trace_api.NonRecordingSpan(parent)
        ids = self._ids
        # A SpanContext is the tuple (trace_id, span_id, is_remote, trace_flags, trace_state,
        # is_valid): unpacked at once rather than read through a property per field.
        if parent is not None:
            trace_id, _, remote, parent_flags, trace_state, valid = parent
        if parent is None or not valid:
            parent, trace_id = None, _random_id(128) if self._random_ids else ids.generate_trace_id()
            random_trace_id = self._random_ids or ids.is_trace_id_random()
        else:
            random_trace_id = parent_flags & TraceFlags.RANDOM_TRACE_ID
        links = links or ()
        if self._decisions is not None:  # as the sampler would decide, without asking it
            decision = self._decisions[None if parent is None else
                                       (remote, bool(parent_flags & TraceFlags.SAMPLED))]
            if parent is None:
                trace_state = None
        else:
            sampling = self._sampler.should_sample(context, trace_id, name, kind, attributes,
                                                   links)
            decision, trace_state, attributes = (sampling.decision, sampling.trace_state,
                                                 sampling.attributes)
        flags = _FLAGS[decision is Decision.RECORD_AND_SAMPLE, bool(random_trace_id)]
        span_context = SpanContext(trace_id, _random_id(64) if self._random_ids
                                   else ids.generate_span_id(), is_remote=False,
                                   trace_flags=flags, trace_state=trace_state)
        if decision is Decision.DROP:
            return trace_api.NonRecordingSpan(span_context)
        span = LeanSpan(name, span_context, parent, kind, self, record_exception,
                        set_status_on_exception)
        if attributes:
            span.set_attributes(attributes)
        for link in links:
            span.add_link(link.context, link.attributes)
        span.start_time = start_time if start_time is not None else time_ns()
        for on_start in self._hooks()[0]:
            on_start(span, parent_context=context)
        return span

    def start_as_current_span(self, name: str, context=None, kind: SpanKind = SpanKind.INTERNAL,
                              attributes=None, links=(), start_time=None,
                              record_exception=True, set_status_on_exception=True,
                              end_on_exit=True):
        span = self.start_span(name, context, kind, attributes, links, start_time,
                               record_exception, set_status_on_exception)
        return trace_api.use_span(span, end_on_exit=end_on_exit,
                                  record_exception=record_exception,
                                  set_status_on_exception=set_status_on_exception)


def _random_id(bits: int) -> int:
    """A RandomIdGenerator's id: random bits, never all zero."""
    drawn = getrandbits(bits)
    while not drawn:
        drawn = getrandbits(bits)
    return drawn


def _decisions_by_parent(sampler) -> dict | None:
    """The decisions of a sampler that decides by the parent alone (the SDK's always_on,
    always_off and their parentbased_ forms, the default), by parent: None for a root, else
    (is_remote, sampled). None for the other samplers (ratios, custom), which are asked.
    Such a sampler's result keeps the span's attributes and takes the parent's trace state."""
    def fixed(delegate) -> Decision | None:
        return delegate._decision if type(delegate) is StaticSampler else None  # pylint: disable=protected-access

    if type(sampler) is StaticSampler:
        decisions = dict.fromkeys((None, (False, False), (False, True), (True, False),
                                   (True, True)), fixed(sampler))
    elif type(sampler) is ParentBased:
        # pylint: disable=protected-access
        decisions = {None: fixed(sampler._root),
                     (True, True): fixed(sampler._remote_parent_sampled),
                     (True, False): fixed(sampler._remote_parent_not_sampled),
                     (False, True): fixed(sampler._local_parent_sampled),
                     (False, False): fixed(sampler._local_parent_not_sampled)}
    else:
        return None
    return decisions if None not in decisions.values() else None


class _Hooks:
    """The span processors' hooks a span's start and end call, as the provider's
    SynchronousMultiSpanProcessor calls them, without the calls that do nothing (the SDK's
    processors' on_start and _on_ending) and, for a batch processor, straight into its queue.
    Read again whenever a processor is added."""

    def __init__(self, processor):
        self._processor = processor
        self._known = None
        self._hooks: tuple[tuple, tuple, tuple] = ((), (), ())

    def __call__(self) -> tuple[tuple, tuple, tuple]:
        """(on_start, _on_ending, on_end hooks) of the processors there are now."""
        processor = self._processor
        if type(processor) is not SynchronousMultiSpanProcessor:
            return (processor.on_start,), (processor._on_ending,), (processor.on_end,)  # pylint: disable=protected-access
        processors = processor._span_processors  # pylint: disable=protected-access
        if processors is not self._known:
            self._hooks = (
                tuple(p.on_start for p in processors
                      if getattr(type(p), "on_start", None) not in _IDLE_HOOKS),
                tuple(p._on_ending for p in processors  # pylint: disable=protected-access
                      if getattr(type(p), "_on_ending", None) not in _IDLE_HOOKS),
                tuple(_sampled_into(p._batch_processor.emit)  # pylint: disable=protected-access
                      if type(p) is BatchSpanProcessor else p.on_end for p in processors))
            self._known = processors
        return self._hooks


def _sampled_into(emit):
    """BatchSpanProcessor.on_end: a sampled span into the processor's queue."""
    def on_end(span) -> None:
        if span.context.trace_flags.sampled:
            emit(span)
    return on_end


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
