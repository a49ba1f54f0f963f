"""The keys of one proxy process: the store, the counters, enforcement, and the event
consumer that settles each finished request.

Storage opens on first use, so a proxy that never sees a virtual key never creates a
database. The consumer settles in the thread that publishes the event (before the last byte
of the answer leaves): a client that waits for its answer and sends the next request at
once must find its parallel slot free and its spend counted. Most requests are admitted and
settled on this worker's slice of their key, with no write (app/keys/allowance.py); those
of a key with max_parallel_requests are written one by one, requests finishing together
sharing one write (app/keys/group_commit.py).

Every wait on the store is bounded by `key_store_timeout` (default 2 s). When the store
cannot be reached, keys verified in the last `key_cache_seconds` keep working, held to their
budget by what this process knows (app/keys/availability.py); spend that could not be
settled is settled when the store answers again.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from app.config import Settings
from app.errors import ProxyError
from app.keys.slices import Slice
from app.keys.availability import KeyCache, StoreGuard, store_unavailable
from app.keys.enforcer import Enforcer
from app.keys.limits import Admission, Usage, budget_exceeded, budget_fits
from app.keys.redis_counters import RedisCounters
from app.keys.sql_counters import SqlCounters
from app.keys.store import MIGRATIONS, KeyRecord, KeyStore
from app.storage.database import Database, database_url
from app.storage.deadline import ran_out
from app.storage.redis_client import redis_client

if TYPE_CHECKING:
    from app.service.events import RequestContext, RequestEvent
    from app.service.router import Router

log = logging.getLogger("switchboard.keys")
# A lease outlives its request's deadline by this much, so only a crashed worker's
# leases ever lapse; a stream extends its lease while it runs (KeyService.held).
LEASE_MARGIN_SECONDS = 300.0
KEY_CACHE_DIR = "key-cache"    # under the data directory


class KeyService:
    def __init__(self, settings: Settings, router: Router):
        self.settings = settings
        self.router = router
        self.lease_seconds = settings.request_timeout + LEASE_MARGIN_SECONDS
        self._lock = threading.Lock()
        self._store: KeyStore | None = None
        self._enforcer: Enforcer | None = None
        self.cache = KeyCache(settings.key_cache_seconds, Path(settings.data_dir) / KEY_CACHE_DIR,
                              settings.key_refresh_seconds)
        self.guard = StoreGuard(self.ping, self._settle_held)
        self._held: dict[str, float] = {}    # key id -> spend not yet settled in the store

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            self._open()
        return self._store

    @property
    def enforcer(self) -> Enforcer:
        if self._enforcer is None:
            self._open()
        return self._enforcer

    def _open(self) -> None:
        with self._lock:
            if self._enforcer is not None:
                return
            env = self.settings.env
            url = database_url(env, self.settings.data_dir)
            database = Database(url, timeout=self.settings.key_store_timeout)
            database.migrate("keys", MIGRATIONS)
            counters = database
            if database.dialect == "postgresql":
                # Every write of a key's counters locks its row until the commit returns;
                # waiting for the disk there (3-4 ms here) made one row take at most a few
                # hundred writes a second from all the workers. Keys themselves are written
                # durably (the first connections).
                counters = Database(url, timeout=self.settings.key_store_timeout,
                                    counters=True)
            redis_counters = None
            if env.get("REDIS_URL"):
                client = redis_client(env["REDIS_URL"], self.settings.redis_timeout)
                redis_counters = RedisCounters(client, self.lease_seconds)
            self._store = KeyStore(database)
            self._enforcer = Enforcer(SqlCounters(counters, self.lease_seconds), redis_counters,
                                      self.router, self.lease_seconds, self._give_back,
                                      self._flush)

    def ping(self) -> None:
        """Raise unless the key store answers within key_store_timeout."""
        self.store.db.query("SELECT 1 FROM api_keys LIMIT 1")

    def authenticate(self, token: str) -> KeyRecord | None:
        """The live key `token` names, or None; from the store, or (while the store cannot be
        reached) from keys verified recently; 503 key_store_unavailable otherwise."""
        key = self.cache.fresh(token)
        if key is not None:
            return key
        if self.guard.up:
            read_at = time.time()
            try:
                key = self.store.authenticate(token)
            except Exception as exc:
                self._store_failed(exc)
            else:
                self.cache.verified(token, key, read_at)
                return key
        key = self.cache.get(token)
        if key is None:
            raise store_unavailable()
        return key

    def admit(self, key: KeyRecord, body: dict, context: RequestContext) -> Admission | None:
        """Hold the request to the key's models, budget and limits (403 / 429). While the store
        cannot be reached: its models, and its budget as this process knows it."""
        if self.guard.up:
            try:
                admission = self.enforcer.admit(key, body, context)
            except ProxyError as error:
                if error.code == "invalid_api_key":  # deleted since it was read
                    self.cache.forget(key.id)
                raise
            except Exception as exc:
                self._store_failed(exc)
            else:
                if admission is not None and admission.stale:
                    self.cache.forget(key.id)
                return admission
        return self._admit_offline(key, body)

    def changed(self) -> None:
        """Keys were changed or deleted through this instance: all its workers read anew."""
        self.cache.changed()

    def held(self, admission: Admission | None, chunks: Iterator) -> Iterator:
        """Pass a stream through, extending its admission's lease while chunks flow (no gap
        exceeds stream_timeout, far below a lease), so that a stream longer than a lease
        keeps its parallel slot and reservation to its end."""
        if admission is None or not (admission.sql_lease or admission.redis_lease or (
                admission.allowance is not None and admission.allowance.lease)):
            yield from chunks
            return
        renew_every = self.lease_seconds / 3
        renewed = time.monotonic()
        for chunk in chunks:
            if time.monotonic() - renewed >= renew_every:
                renewed = time.monotonic()
                try:
                    self.enforcer.extend(admission)
                except Exception as exc:  # the store is down: the lease lapses as it would
                    log.warning("could not extend the lease of key %s (%s)", admission.key.id,
                                type(exc).__name__)
            yield chunk

    def _admit_offline(self, key: KeyRecord, body: dict) -> None:
        self.enforcer.check_models(key, body)
        if key.max_budget is None:
            return None
        now = time.time()
        reset_due = key.budget_reset_at is not None and key.budget_reset_at <= now
        usage = Usage(spend=(0.0 if reset_due else key.spend)
                      + self.cache.spend_since_verified(key.id))
        if not budget_fits(key, usage, 0.0):
            raise budget_exceeded(key, usage, 0.0, now)
        return None

    def handle(self, event: RequestEvent) -> None:
        if event.key_id is None:
            return
        self.cache.spent(event.key_id, event.cost or 0.0)
        try:
            self.enforcer.settle(event, self.guard.up)
        except Exception as exc:
            self._unsettled(event.key_id, event.cost or 0.0, exc, f"request {event.request_id}")

    def _give_back(self, piece: Slice) -> None:
        """Return a slice of a key to the store; its spend, when the store does not take it,
        is settled when it answers again (its reservation lapses with its lease)."""
        try:
            self.enforcer.allowances.write_back(piece, self.guard.up)
        except Exception as exc:
            self._unsettled(piece.key.id, piece.spent - piece.flushed, exc, "a slice")

    def _flush(self, piece: Slice, cost: float) -> None:
        """Add an open slice's finished spend to its key's; what the store does not take is
        settled when it answers again (the slice's reservation is freed when it is given
        back, or lapses with its lease)."""
        try:
            if not self.guard.up:
                raise ConnectionError("the key store is unreachable")
            self.enforcer.sql.add_spend(piece.key.id, piece.lease, cost)
        except Exception as exc:
            self._unsettled(piece.key.id, cost, exc, "a slice's spend")

    def _unsettled(self, key_id: str, cost: float, error: BaseException, what: str) -> None:
        """Hold spend the store did not take, to settle it when the store answers again."""
        if cost:
            with self._lock:
                self._held[key_id] = self._held.get(key_id, 0.0) + cost
        log.warning("%s of key %s is settled when the key store answers again (%s)", what,
                    key_id, error)
        if ran_out():
            threading.Thread(target=self._catch_up, name="key-settle", daemon=True).start()
        elif self.guard.up:
            self.guard.failed(error)

    def _store_failed(self, error: BaseException) -> None:
        """A wait that the request's own timeout ended says nothing of the store: only that
        request goes without it. Any other failure stops every request's use of the store
        until a probe answers (StoreGuard)."""
        if not ran_out():
            self.guard.failed(error)

    def _catch_up(self) -> None:
        """Settle what a request's own deadline kept from its settle, with the store's own
        bound (off the request): a failure then is the store's."""
        try:
            self._settle_held()
        except Exception as exc:
            if self.guard.up:
                self.guard.failed(exc)

    def _settle_held(self) -> None:
        """Add the spend the store missed; what fails to go in stays held for the next try."""
        with self._lock:
            pending, self._held = list(self._held.items()), {}
        try:
            while pending:
                key_id, cost = pending[0]
                self.enforcer.sql.settle(key_id, (), cost, None, 0)
                pending.pop(0)
        finally:
            with self._lock:
                for key_id, cost in pending:
                    self._held[key_id] = self._held.get(key_id, 0.0) + cost

    def close(self, timeout: float) -> None:
        """Give back this worker's idle slices, then close the store's connections (a later
        use opens new ones)."""
        if self._enforcer is not None:
            self._enforcer.allowances.close()
            self._enforcer.sql.db.close()
        if self._store is not None:
            self._store.db.close()
