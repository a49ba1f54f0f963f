"""Serving virtual keys while the key store cannot be reached.

`StoreGuard` remembers that the store failed: requests stop waiting on it (a recently
verified key is served from `KeyCache`, a key never seen is refused at once) while one
background thread probes the store every PROBE_SECONDS; the first probe that answers puts
it back in use, well within a second of the store's return.

`KeyCache` holds each key verified in the last `key_cache_seconds` (shared by the workers of
an instance), with what this process has spent on it since, so a key's budget is still
enforced during an outage: last known spend plus this worker's spend since. Every request re-reads its key while the store is
up, so a revocation reaches an instance whose store is down within that same bound.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Callable

from app.errors import ProxyError
from app.keys.store import KeyRecord

log = logging.getLogger("switchboard.keys")
PROBE_SECONDS = 0.2
SHARE_FRACTION = 0.25         # a key's shared entry is refreshed after this part of the bound
SHARE_TIMEOUT_SECONDS = 0.05  # longest wait on the shared store's lock


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
    """Verified keys, in this process's memory and in a small store under the data directory
    that every worker of the instance shares (a key verified by one worker keeps working in
    all of them). The shared copy is refreshed at most every SHARE_FRACTION of the bound, so
    the request path writes to disk rarely; it is read only while the store is unreachable."""

    def __init__(self, seconds: float, folder: str | os.PathLike):
        self.seconds = seconds
        self.folder = folder
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[KeyRecord, float]] = {}   # token hash -> (key, verified)
        self._shared_at: dict[str, float] = {}                   # token hash -> last shared
        self._spent: dict[str, float] = {}                       # key id -> spent since verified
        self._shared = None

    @staticmethod
    def _slot(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def verified(self, token: str, key: KeyRecord | None) -> None:
        """What the store just said of `token`: its key, or None (unknown, revoked)."""
        slot, now = self._slot(token), time.time()
        with self._lock:
            if key is None:
                known = self._entries.pop(slot, None) is not None
                self._shared_at.pop(slot, None)
            else:
                self._entries[slot] = (key, now)
                self._spent[key.id] = 0.0
                share = now - self._shared_at.get(slot, 0.0) >= self.seconds * SHARE_FRACTION
                if share:
                    self._shared_at[slot] = now
        if key is None:
            if known:
                self._share(lambda shared: shared.delete(slot))
        elif share:
            self._share(lambda shared: shared.set(slot, (key, now), expire=self.seconds))

    def get(self, token: str) -> KeyRecord | None:
        """The key `token` named when it was last verified (by any worker), if that was recent
        enough."""
        slot = self._slot(token)
        entry = self._entries.get(slot) or self._share(lambda shared: shared.get(slot))
        if entry is None or time.time() - entry[1] > self.seconds:
            return None
        return entry[0]

    def spent(self, key_id: str, cost: float) -> None:
        with self._lock:
            if key_id in self._spent:
                self._spent[key_id] += cost

    def spend_since_verified(self, key_id: str) -> float:
        return self._spent.get(key_id, 0.0)

    def _share(self, action):
        """Run `action` on the shared store; a store that fails only loses the sharing."""
        try:
            if self._shared is None:
                import diskcache
                self._shared = diskcache.Cache(str(self.folder), timeout=SHARE_TIMEOUT_SECONDS)
            return action(self._shared)
        except Exception as exc:
            log.warning("shared key cache unavailable (%s: %s)", type(exc).__name__, exc)
            return None
