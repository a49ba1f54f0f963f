"""Serving virtual keys while the key store cannot be reached.

`StoreGuard` remembers that the store failed: requests stop waiting on it (a recently
verified key is served from `KeyCache`, a key never seen is refused at once) while one
background thread probes the store every PROBE_SECONDS; the first probe that answers puts
it back in use, well within a second of the store's return.

`KeyCache` holds each key verified in the last `key_cache_seconds` (shared by the workers of
an instance), with what this process has spent on it since, so a key's budget is still
enforced during an outage: last known spend plus this worker's spend since. While the store
is up a key is read anew at least every `key_refresh_seconds`, so a revocation reaches an
instance whose store is down within `key_cache_seconds`.
"""
from __future__ import annotations

import hashlib
import logging
import mmap
import os
import threading
import time
from pathlib import Path
from typing import Callable

from app.errors import ProxyError
from app.keys.store import KeyRecord

log = logging.getLogger("switchboard.keys")
PROBE_SECONDS = 0.2
SHARE_FRACTION = 0.25         # a key's shared entry is refreshed after this part of the bound
SHARE_TIMEOUT_SECONDS = 0.05  # longest wait on the shared store's lock
STAMP_BYTES = 8
CHANGE_STAMP = "change-stamp"  # 8 bytes: when a key was last changed on this instance (ns)


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
    the request path writes to disk rarely; it is read only while the store is unreachable.

    The same memory serves the request path: a key read from the store in the last
    `fresh_seconds` is not read again. A change made through this instance's admin API
    (update, delete) ends that freshness in every worker at once: it writes the time to the
    CHANGE_STAMP file, which every worker maps into memory and reads at each request (a
    memory read: a stat per request, which released the GIL, cost a keyed request a wait
    for it under load). A change made through another instance is seen within
    `fresh_seconds`, and a limited key is read with its row when a worker next counts it
    there (app/keys/allowance.py: within SLICE_SECONDS)."""

    def __init__(self, seconds: float, folder: str | os.PathLike, fresh_seconds: float = 0.0):
        self.seconds = seconds
        self.fresh_seconds = fresh_seconds
        self.folder = folder
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[KeyRecord, float]] = {}   # token hash -> (key, verified)
        # token -> (key, read at): memory only, looked up at every keyed request (a SHA-256
        # each time cost more than the look-up; the shared store on disk keeps hashes only)
        self._fresh: dict[str, tuple[KeyRecord, float]] = {}
        self._shared_at: dict[str, float] = {}                   # token hash -> last shared
        self._spent: dict[str, float] = {}                       # key id -> spent since verified
        self._shared = None
        self._stamp_path = Path(folder) / CHANGE_STAMP
        self._stamp: mmap.mmap | None = None                     # the file, mapped
        self._stamp_seen = bytes(STAMP_BYTES)                    # its value last seen
        self._unwatched = False                                  # the stamp cannot be mapped
        self._changed_at = 0.0                                   # when a change was last seen

    @staticmethod
    def _slot(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def fresh(self, token: str) -> KeyRecord | None:
        """The key `token` named when this process read it from the store, if that was in the
        last `fresh_seconds` and after the last change to any key made on this instance."""
        entry = self._fresh.get(token)
        if entry is None:
            return None
        key, read_at = entry
        if time.time() - read_at > self.fresh_seconds or read_at <= self._last_change():
            return None
        return key

    def _last_change(self) -> float:
        """When this process saw the last change made on this instance; now, when the stamp
        cannot be mapped (keys are then read from the store at each request)."""
        if self._stamp is None:
            if self._unwatched:
                return time.time()
            try:
                self._stamp = self._map_stamp()
            except (OSError, ValueError) as exc:
                self._unwatched = True
                log.warning("cannot watch for key changes (%s); keys are read at each request",
                            exc)
                return time.time()
        seen = self._stamp[:STAMP_BYTES]
        if seen != self._stamp_seen:
            self._stamp_seen, self._changed_at = seen, time.time()
        return self._changed_at

    def _map_stamp(self) -> mmap.mmap:
        fd = self._open_stamp()
        try:
            return mmap.mmap(fd, STAMP_BYTES, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)

    def _open_stamp(self) -> int:
        """The stamp file, created with a zero stamp when missing."""
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self._stamp_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if os.fstat(fd).st_size < STAMP_BYTES:
            os.ftruncate(fd, STAMP_BYTES)
        return fd

    def changed(self) -> None:
        """A key was changed or deleted here: every worker of the instance reads keys anew."""
        self._changed_at = time.time()
        try:
            fd = self._open_stamp()
            try:
                os.pwrite(fd, time.time_ns().to_bytes(STAMP_BYTES, "little"), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot tell the other workers of a key change (%s); they see it "
                        "within key_refresh_seconds", exc)

    def forget(self, key_id: str) -> None:
        """The key changed since it was read: read it anew on its next request."""
        with self._lock:
            for token in [token for token, (key, _) in self._fresh.items() if key.id == key_id]:
                del self._fresh[token]

    def verified(self, token: str, key: KeyRecord | None, read_at: float) -> None:
        """What the store said of `token` (read when the request began, `read_at`): its key,
        or None (unknown, revoked)."""
        slot, now = self._slot(token), time.time()
        with self._lock:
            if key is None:
                known = self._entries.pop(slot, None) is not None
                self._fresh.pop(token, None)
                self._shared_at.pop(slot, None)
            else:
                self._entries[slot] = (key, now)
                if self.fresh_seconds:
                    self._fresh[token] = (key, read_at)
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
