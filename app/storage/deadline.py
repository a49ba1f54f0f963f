"""How long the stores may keep the current request waiting: each store's own bound, or less
when the request's own `timeout` runs out sooner.

The bound travels with the request (a context variable: per thread, and per greenlet under
gevent) rather than through every call between the endpoint and the connection pool; a
background thread (the ledger writer, a probe) has none, and waits its store's own bound.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

_deadline: ContextVar[float | None] = ContextVar("switchboard_store_deadline", default=None)


@contextmanager
def waits_until(deadline: float | None) -> Iterator[None]:
    """Store waits inside end by `deadline` (time.monotonic(); None: the stores' own bounds)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def bounded(own: float) -> float:
    """The longest a store whose own bound is `own` may make the caller wait now."""
    deadline = _deadline.get()
    if deadline is None:
        return own
    return max(0.0, min(own, deadline - time.monotonic()))



def ran_out() -> bool:
    """True once the current request's own deadline has passed: a store wait that ended then
    was cut short by the request, and says nothing of the store."""
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() >= deadline
