"""What happens when the cache backend fails: the request goes on uncached.

Each failure is counted (`count`, shown in /cache/stats for the metrics), logged at most
once per LOG_EVERY seconds with how many were folded into that line, and opens a short
breaker: for BACKOFF seconds this process does not touch the backend at all, so an
unreachable Redis costs one connect timeout per few seconds, not one per request.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("switchboard.cache")

BACKOFF = 2.0
LOG_EVERY = 30.0


class Faults:
    def __init__(self, backoff: float = BACKOFF, log_every: float = LOG_EVERY):
        self.backoff = backoff
        self.log_every = log_every
        self.count = 0
        self._lock = threading.Lock()
        self._closed_until = 0.0
        self._logged_at = float("-inf")
        self._unlogged = 0

    def available(self) -> bool:
        return time.monotonic() >= self._closed_until

    def record(self, operation: str, error: Exception, pause: bool = True) -> None:
        """Count and (rate-limited) log a failure; `pause`: leave the backend alone for a
        while (not for best-effort work like counting, which never held up a request)."""
        now = time.monotonic()
        with self._lock:
            self.count += 1
            if pause:
                self._closed_until = now + self.backoff
            if now - self._logged_at < self.log_every:
                self._unlogged += 1
                return
            folded, self._unlogged, self._logged_at = self._unlogged, 0, now
        log.warning("cache %s failed%s: %s: %s%s", operation,
                    f", serving uncached for {self.backoff:g} s" if pause else "",
                    type(error).__name__, str(error)[:200],
                    f" ({folded} more failures since the last report)" if folded else "")
