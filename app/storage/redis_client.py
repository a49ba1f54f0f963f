"""The one way the proxy opens Redis (REDIS_URL): the shared cache, cooldowns and key limits.

Every user of Redis already falls back when it fails (the cache misses, cooldowns and rate
limits go local). What must not happen is a request paying for the wait: each call is bounded
by `redis_timeout` (default 50 ms, no retries), and a circuit breaker shared by every client
of one URL in the process opens on the first failure, so for BREAKER_OPEN_SECONDS every call
fails at once without touching the network; then one call tries again. A frozen Redis costs
one request per second a bounded wait, and a Redis that returns is used again within a
second.
"""
from __future__ import annotations

import os
import threading
import time

from app.config import ConfigError
from app.platform import redis_tls_options

BREAKER_OPEN_SECONDS = 1.0


class CircuitBreaker:
    def __init__(self):
        self._open_until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + BREAKER_OPEN_SECONDS


_breakers: dict[tuple, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def _breaker_for(key: tuple) -> CircuitBreaker:
    with _breakers_lock:
        return _breakers.setdefault(key, CircuitBreaker())


def redis_client(url: str, timeout: float, **options):
    """A client for `url`; a malformed URL is a ConfigError that does not echo it (it may
    carry a password). Connections are made lazily, on first use."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    tls = redis_tls_options(url, os.environ)
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    retry=Retry(NoBackoff(), 0),
                                    connection_class=_guarded_connection_class(url),
                                    breaker=_breaker_for((url, *sorted(tls.items()))),
                                    **tls, **options)
    except ValueError:
        raise ConfigError("REDIS_URL is not a Redis URL (redis://[:password@]host:port/db)"
                          ) from None


_guarded_classes: dict[type, type] = {}


def _guarded_connection_class(url: str) -> type:
    """redis-py's connection class for `url`'s scheme, refusing to talk while its breaker is
    open and tripping it on a failure. (Made on first use: redis is imported only by proxies
    that use it.)"""
    import redis

    base = (redis.SSLConnection if url.startswith("rediss://") else
            redis.UnixDomainSocketConnection if url.startswith("unix://") else redis.Connection)
    if base in _guarded_classes:
        return _guarded_classes[base]

    class GuardedConnection(base):
        def __init__(self, *, breaker: CircuitBreaker, **kwargs):
            super().__init__(**kwargs)
            self.breaker = breaker

        def _guarded(self, call, *args, **kwargs):
            if self.breaker.open:
                raise redis.ConnectionError("Redis failed a moment ago; not waiting on it")
            try:
                return call(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self.breaker.trip()
                raise

        def connect(self, *args, **kwargs):
            return self._guarded(super().connect, *args, **kwargs)

        def send_packed_command(self, *args, **kwargs):
            return self._guarded(super().send_packed_command, *args, **kwargs)

        def read_response(self, *args, **kwargs):
            return self._guarded(super().read_response, *args, **kwargs)

    _guarded_classes[base] = GuardedConnection
    return GuardedConnection
