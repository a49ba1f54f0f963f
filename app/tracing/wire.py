"""Finished spans (app/tracing/lean_sdk.py's, or the SDK's) -> the bytes of an OTLP
`ExportTraceServiceRequest` (protobuf).

The official exporter builds one protobuf object per span, attribute and value before it
serializes them: about 2 us per attribute and 20 us per span, most of the tracing cost of a
request. This writes the same message straight to bytes (the protobuf wire format of
opentelemetry-proto's trace.proto), and keeps the bytes of recent attributes, which repeat
from request to request (model, provider, deployment, path...). tests/test_tracing_wire.py
holds it to the official encoder: both decode to equal messages.
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger("switchboard")
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano (7) and end_time_unix_nano (8), fixed64
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags
_SPAN_FLAGS = {False: b"\x85\x01" + _FIXED32.pack(_HAS_IS_REMOTE),  # field 16, fixed32
               True: b"\x85\x01" + _FIXED32.pack(_HAS_IS_REMOTE | _IS_REMOTE)}
_SMALL = [bytes((n,)) for n in range(0x80)]  # the varints of one byte
_ATTRIBUTE_CACHE_SIZE = 4096  # encoded (key, value) pairs kept; the cache starts over when full
_attributes: dict[tuple, bytes] = {}
_names: dict[str, bytes] = {}  # span names -> their encoded field (see _name)
_UNSET_STATUS = b"\x7a\x00"  # an empty Status message: code UNSET, no description


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64: two's complement on ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message), `tag` already shifted."""
    return bytes((tag,)) + _varint(len(payload)) + payload


def _text(tag: int, text: str | None) -> bytes:
    return _field(tag, text.encode()) if text else b""


def _count(tag: int, value: int) -> bytes:
    return bytes((tag,)) + _varint(value) if value else b""


def _any_value(value: Any) -> bytes:
    """AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"integer attribute out of int64 range: {value}")
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_field(0x0A, _key_value(str(k), v))
                                     for k, v in value.items()))
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _field(0x0A, key.encode()) + _field(0x12, _any_value(value))


def _attribute(tag: int, key: str, value: Any) -> bytes:
    """One KeyValue field; the bytes of hashable (key, value) pairs are kept for next time.
    A value protobuf cannot hold (an int beyond int64) is left out, as the official encoder
    does, rather than failing the whole batch."""
    cached = (tag, key, value.__class__, value)
    try:
        encoded = _attributes.get(cached)
    except TypeError:  # a dict value: not hashable, not kept
        encoded, cached = None, None
    if encoded is None:
        try:
            encoded = _field(tag, _key_value(key, value))
        except (TypeError, ValueError):
            log.warning("span attribute %s left out: %r cannot be encoded", key, type(value))
            return b""
        if cached is not None:
            if len(_attributes) >= _ATTRIBUTE_CACHE_SIZE:
                _attributes.clear()
            _attributes[cached] = encoded
    return encoded


def _attributes_of(tag: int, attributes: Mapping[str, Any] | None) -> bytes:
    """The KeyValue fields of `attributes`, read through a plain dict (an SDK span's
    BoundedAttributes copies to one in C, where reading it key by key costs a Python call
    each)."""
    if not attributes:
        return b""
    plain = attributes.copy() if hasattr(attributes, "copy") else dict(attributes)
    known = _attributes.get
    try:  # the common case inline: every pair hashable, most of them encoded before
        return b"".join([known((tag, key, value.__class__, value)) or _attribute(tag, key, value)
                         for key, value in plain.items()])
    except TypeError:  # a mapping value: not hashable
        return b"".join([_attribute(tag, key, value) for key, value in plain.items()])


def _flags(parent) -> int:
    return _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE


def _trace_state(trace_state) -> bytes:
    if not trace_state:
        return b""
    return _text(0x1A, ",".join(f"{key}={value}" for key, value in trace_state.items()))


def _event(event) -> bytes:
    """Event: time 1, name 2, attributes 3, dropped_attributes_count 4."""
    return _field(0x5A, b"\x09" + _FIXED64.pack(event.timestamp) + _text(0x12, event.name)
                  + _attributes_of(0x1A, event.attributes)
                  + _count(0x20, event.dropped_attributes))


def _link(link) -> bytes:
    """Link: trace_id 1, span_id 2, attributes 4, dropped 5, flags 6 (no trace_state 3: the
    official encoder writes none)."""
    context = link.context
    return _field(0x6A, _field(0x0A, context.trace_id.to_bytes(16, "big"))
                  + _field(0x12, context.span_id.to_bytes(8, "big"))
                  + _attributes_of(0x22, link.attributes)
                  + _count(0x28, link.dropped_attributes) + b"\x35" + _FIXED32.pack(_flags(context)))


def _status(status) -> bytes:
    """Status (always present, as the official encoder writes it): message 2, code 3."""
    if status is None:
        return b""
    return _field(0x7A, _text(0x12, status.description) + _count(0x18, status.status_code.value))


def _span(span) -> bytes:
    """Span: fields 1-15 in order, then flags (16); the fields a proxy span seldom has (trace
    state, events, links, dropped counts, a status) only when it has them."""
    context, parent = span.get_span_context(), span.parent
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"),
             b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if context.trace_state:
        parts.append(_trace_state(context.trace_state))
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    name = _names.get(span.name) or _name(span.name)
    parts += (name, _SMALL[0x30], _SMALL[span.kind.value + 1],  # SDK INTERNAL=0 -> proto 1
              _TIMES.pack(0x39, span.start_time or 0, 0x41, span.end_time or 0),
              _attributes_of(0x4A, span.attributes))
    if span.dropped_attributes:
        parts.append(_count(0x50, span.dropped_attributes))
    if span.events or span.dropped_events:
        parts += [_event(event) for event in span.events]
        parts.append(_count(0x60, span.dropped_events))
    if span.links or span.dropped_links:
        parts += [_link(link) for link in span.links]
        parts.append(_count(0x70, span.dropped_links))
    status = span.status
    parts += (_UNSET_STATUS if status is not None and status.status_code.value == 0
              and not status.description else _status(status),
              _SPAN_FLAGS[parent is not None and parent.is_remote])
    return _field(0x12, b"".join(parts))


def _name(name: str) -> bytes:
    """A span's name field, kept: names repeat (the route, the operation and model)."""
    if len(_names) >= _ATTRIBUTE_CACHE_SIZE:
        _names.clear()
    encoded = _names[name] = _text(0x2A, name)
    return encoded


def _scope(scope) -> bytes:
    """InstrumentationScope: name 1, version 2, attributes 3."""
    if scope is None:
        return _field(0x0A, b"")
    return _field(0x0A, _text(0x0A, scope.name) + _text(0x12, scope.version)
                  + _attributes_of(0x1A, scope.attributes))


def encode_spans(spans: Sequence) -> bytes:
    """The ExportTraceServiceRequest of `spans`, grouped by resource, then by scope (by
    identity: hashing a Resource serializes its attributes each time)."""
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        by_scope = grouped.setdefault(id(resource), (resource, {}))[1]
        by_scope.setdefault(id(scope), (scope, []))[1].append(_span(span))
    out = []
    for resource, by_scope in grouped.values():
        scope_spans = b"".join(
            _field(0x12, _scope(scope) + b"".join(encoded)
                   + _text(0x1A, scope.schema_url if scope else None))
            for scope, encoded in by_scope.values())
        out.append(_field(0x0A, _field(0x0A, _attributes_of(0x0A, resource.attributes))
                          + scope_spans + _text(0x1A, resource.schema_url)))
    return b"".join(out)
