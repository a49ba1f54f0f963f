"""The keys of one proxy process: the store, the counters, enforcement, and the event
consumer that settles each finished request.

Storage opens on first use, so a proxy that never sees a virtual key never creates a
database. The consumer settles synchronously, in the thread that publishes the event
(before the last byte of the answer leaves): a client that waits for its answer and sends
the next request at once must find its parallel slot free and its spend counted. It is
one short transaction.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from app.config import Settings
from app.keys.enforcer import Enforcer
from app.keys.redis_counters import RedisCounters
from app.keys.sql_counters import SqlCounters
from app.keys.store import MIGRATIONS, KeyStore
from app.storage.database import Database, database_url
from app.storage.redis_client import redis_client

if TYPE_CHECKING:
    from app.service.events import RequestEvent
    from app.service.router import Router

log = logging.getLogger("switchboard.keys")
# A lease outlives its request's deadline by this much, so only a crashed worker's
# leases ever lapse (a stream running longer than that frees its slot early).
LEASE_MARGIN_SECONDS = 300.0
REDIS_TIMEOUT_SECONDS = 1.0


class KeyService:
    def __init__(self, settings: Settings, router: Router):
        self.settings = settings
        self.router = router
        self.lease_seconds = settings.request_timeout + LEASE_MARGIN_SECONDS
        self._lock = threading.Lock()
        self._store: KeyStore | None = None
        self._enforcer: Enforcer | None = None

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
            database = Database(database_url(env, self.settings.data_dir))
            database.migrate("keys", MIGRATIONS)
            redis_counters = None
            if env.get("REDIS_URL"):
                client = redis_client(env["REDIS_URL"], REDIS_TIMEOUT_SECONDS)
                redis_counters = RedisCounters(client, self.lease_seconds)
            self._store = KeyStore(database)
            self._enforcer = Enforcer(SqlCounters(database, self.lease_seconds), redis_counters,
                                      self.router, self.lease_seconds)

    def handle(self, event: RequestEvent) -> None:
        if event.key_id is None:
            return
        try:
            self.enforcer.settle(event)
        except Exception:
            log.exception("could not settle request %s of key %s", event.request_id,
                          event.key_id)

    def close(self, timeout: float) -> None:
        """Nothing is queued: every request was settled when it finished."""
