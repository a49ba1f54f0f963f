"""The proxy's spans: the OpenTelemetry API's `Span`, started by the official SDK's provider
(its sampler, id generator, resource, span limits and span processors, all configured by
the standard OTEL_* variables), but without the SDK span's own machinery.

A traced request makes two to five spans, and the SDK's span class was most of what tracing
cost the request's path: four locks per span (gevent's under gevent), a recursive type check
then a locked insert per attribute, events and links in lock-guarded lists, and the ended
span copied into a ReadableSpan for the processors. A `LeanSpan` (app/tracing/lean_span.py)
is one object, ended in place, read by the processors as the SDK's ReadableSpan.
tests/test_tracing_lean_sdk.py holds what a LeanSpan records to what the SDK's span records
for the same calls.
"""
from __future__ import annotations

import os
import types
from random import getrandbits
from time import time_ns
from typing import Any, Mapping, Sequence

from opentelemetry import trace as trace_api
from opentelemetry.context import get_current
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY

from app.tracing.lean_span import LeanSpan

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
