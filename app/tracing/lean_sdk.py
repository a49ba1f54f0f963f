"""The official SDK's spans, made cheaper to fill without changing what they hold.

A traced request makes two spans and gives them about thirty attributes: half of the SDK's
CPU for them went to checking those attributes one by one (a recursive type check per value,
then a locked insert per key), and under gevent a further eighth to gevent's locks. Both are
swapped here, in the SDK's span module only (its metrics and logs keep the originals):

- `BoundedAttributes` gets a fast path for the attributes the proxy gives (non-empty string
  keys, str / int / float / bool values or lists of them, within the span limits): the same
  entries, in the same order, as the SDK's own checks would keep, set in one locked pass;
  anything else takes the SDK's own path.
- Under gevent, `threading.Lock` in the span modules is the interpreter's (see `_native_locks`).
- The batch processor asks the kernel for the process id at every span's end (to notice a
  fork): it reads it from a copy kept here and renewed in each forked child (`_known_pid`).
"""
from __future__ import annotations

import os
import threading
import types
from typing import Any, Mapping

_PLAIN = frozenset((str, int, float, bool))
_SEQUENCES = frozenset((list, tuple))


def install() -> None:
    """Swap both into the SDK (once per process, before the first span)."""
    import opentelemetry.sdk.trace as sdk_trace
    if not issubclass(sdk_trace.BoundedAttributes, _PlainAttributesMixin):
        sdk_trace.BoundedAttributes = _plain_attributes_class(sdk_trace.BoundedAttributes)
        _known_pid()
    _native_locks()


class _PlainAttributesMixin:
    """Marks the swapped class (install() is idempotent)."""


def _plain_attributes_class(base: type) -> type:
    class PlainAttributes(_PlainAttributesMixin, base):
        """The SDK's BoundedAttributes, with one pass for plain values (see module doc)."""

        def _set_items(self, attributes: Mapping[str, Any]) -> None:
            plain = _plain(attributes, self.max_value_len)
            if (plain is None or self._immutable
                    or (self.maxlen is not None and len(self._dict) + len(plain) > self.maxlen)):
                return super()._set_items(attributes)
            entries = self._dict
            with self._lock:
                for key, value in plain.items():
                    if key in entries:  # moved last, as the SDK's own insert does
                        del entries[key]
                    entries[key] = value

    return PlainAttributes


def _plain(attributes: Mapping[str, Any], max_len: int | None) -> dict | None:
    """`attributes` as the SDK would store them, or None when one needs its own checks."""
    if max_len is not None:
        return None
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


def _known_pid() -> None:
    """`os.getpid()` is a system call, and the batch processor makes it for every span it is
    given (an eighth of its cost under load); the pid is known here instead, and renewed in
    a forked child before any of its code runs (fork hooks run in the order they were
    registered, and this one is registered before any batch processor's)."""
    import opentelemetry.sdk._shared_internal as batching
    pid = [os.getpid()]

    def renew() -> None:
        pid[0] = os.getpid()

    os.register_at_fork(after_in_child=renew)
    batching.os = types.SimpleNamespace(**{**vars(os), "getpid": lambda: pid[0]})


def _native_locks() -> None:
    """Under gevent, `threading.Lock` is gevent's, about fifteen times dearer to make than the
    interpreter's, and the SDK makes four per span (the span, its attributes, events and
    links) for an eighth of a span's cost. Those locks only guard dict and list updates and
    are never held across a greenlet switch (the span processors run outside them), so the
    SDK's span modules get the interpreter's own Lock; its batch processor keeps gevent's
    Thread, Event and Lock, which it waits on."""
    try:
        from gevent import monkey
    except ImportError:
        return
    if not monkey.is_module_patched("threading"):
        return
    import opentelemetry.attributes
    import opentelemetry.sdk.trace
    import opentelemetry.sdk.util
    native = types.SimpleNamespace(**{**vars(threading),
                                      "Lock": monkey.get_original("threading", "Lock")})
    for module in (opentelemetry.sdk.trace, opentelemetry.sdk.util, opentelemetry.attributes):
        module.threading = native
