"""Serving virtual keys while the key store cannot be reached.

`StoreGuard` remembers that the store failed: requests stop waiting on it (a recently
verified key is served from `KeyCache`, a key never seen is refused at once) while one
background thread probes the store every PROBE_SECONDS; the first probe that answers puts
it back in use, well within a second of the store's return.

`KeyCache` holds each key verified in the last `key_cache_seconds`, with what this process
has spent on it since, so a key's budget is still enforced during an outage: last known
spend plus this instance's spend since. Every request re-reads its key while the store is
up, so a revocation reaches an instance whose store is down within that same bound.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Callable

from app.errors import ProxyError
from app.keys.store import KeyRecord

log = logging.getLogger("switchboard.keys")
PROBE_SECONDS = 0.2


def store_unavailable() -> ProxyError:
    return ProxyError("The proxy cannot check API keys right now; try again shortly.",
                      status=503, type="server_error", code="key_store_unavailable",
                      headers={"Retry-After": "1"})


class StoreGuard:
    def __init__(self, probe: Callable[[], None], on_recovery: Callable[[], None]):
        self._probe = probe
        self._on_recovery = on_recovery
        self._lock = threading.Lock()
        self._probing = False
        self.up = True

    def failed(self, error: BaseException) -> None:
        """The store failed a request: stop using it until a probe succeeds."""
        with self._lock:
            self.up = False
            if self._probing:
                return
            self._probing = True
        log.error("the key store cannot be reached (%s: %s); serving keys verified in the "
                  "last key_cache_seconds until it answers again", type(error).__name__, error)
        threading.Thread(target=self._probe_until_up, name="key-store-probe", daemon=True).start()

    def _probe_until_up(self) -> None:
        while True:
            time.sleep(PROBE_SECONDS)
            try:
                self._probe()
                break
            except Exception:
                continue
        with self._lock:
            self.up, self._probing = True, False
        log.warning("the key store answers again")
        try:
            self._on_recovery()
        except Exception:
            log.exception("catching up with the key store failed")


class KeyCache:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[KeyRecord, float]] = {}   # token hash -> (key, verified)
        self._spent: dict[str, float] = {}                       # key id -> spent since verified

    @staticmethod
    def _slot(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def verified(self, token: str, key: KeyRecord | None) -> None:
        """What the store just said of `token`: its key, or None (unknown, revoked)."""
        slot = self._slot(token)
        with self._lock:
            if key is None:
                self._entries.pop(slot, None)
                return
            self._entries[slot] = (key, time.monotonic())
            self._spent[key.id] = 0.0

    def get(self, token: str) -> KeyRecord | None:
        """The key `token` named when it was last verified, if that was recent enough."""
        entry = self._entries.get(self._slot(token))
        if entry is None or time.monotonic() - entry[1] > self.seconds:
            return None
        return entry[0]

    def spent(self, key_id: str, cost: float) -> None:
        with self._lock:
            if key_id in self._spent:
                self._spent[key_id] += cost

    def spend_since_verified(self, key_id: str) -> float:
        return self._spent.get(key_id, 0.0)
