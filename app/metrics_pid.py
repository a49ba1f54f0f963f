"""prometheus_client's multiprocess values, told this process's id without a syscall each.

In multiprocess mode (under gunicorn: gunicorn.conf.py) every increment of a value asks
`os.getpid()` whether the process was forked since, to move to a file of its own: a
getpid(2) syscall per increment, 8 per chat request (requests, latency and overhead
histograms, tokens, cost). Here the id is kept in memory and renewed in a forked child
(`os.register_at_fork`), so the answer is the same without asking the kernel.

`install()` must run before the first value is made (a labelled metric's first series, or
a metric without labels): gunicorn.conf.py calls it before the app is loaded. Values made
earlier would keep the former class, and two classes would each map the same per-process
file.
"""
from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """This process's id, as `os.getpid()` gives it."""
    return _pid


def install() -> None:
    """Multiprocess values identify the process with `current_pid` (when in that mode).
    Once per process: gunicorn's master runs its config again on a reload (HUP), while the
    values of the first class live on."""
    from prometheus_client import values
    if getattr(values.ValueClass, "_multiprocess", False) and values.ValueClass not in _ours:
        values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)
        _ours.append(values.ValueClass)


_ours: list = []
