"""The one way the proxy opens Redis (REDIS_URL): the shared cache, cooldowns and key limits."""
from __future__ import annotations

import os

from app.config import ConfigError
from app.platform import redis_tls_options


def redis_client(url: str, timeout: float, **options):
    """A client for `url`; a malformed URL is a ConfigError that does not echo it (it may
    carry a password). Connections are made lazily, on first use."""
    import redis
    try:
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                    **redis_tls_options(url, os.environ), **options)
    except ValueError:
        raise ConfigError("REDIS_URL is not a Redis URL (redis://[:password@]host:port/db)"
                          ) from None
