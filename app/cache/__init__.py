"""Response caching: exact and semantic, on disk (default) or in Redis.

`build_cache(settings)` reads the `cache` config section and returns the cache the
service uses, or None when caching is off (the default). The parts are imported only
when caching is on: the service imports this package either way.
"""
from __future__ import annotations

from app.config import Settings


def build_cache(settings: Settings):
    """A Cache for these settings, or None when the config leaves caching off."""
    from app.cache.cache import Cache
    from app.cache.config import load_config

    config = load_config(settings)
    if not config.enabled:
        return None
    if config.backend == "redis":
        from app.cache.backends.redis import RedisBackend
        backend = RedisBackend(config.redis_url, config.max_bytes, settings.redis_timeout)
    else:
        from app.cache.backends.disk import DiskBackend
        backend = DiskBackend(config.directory, config.max_bytes)
    matcher = None
    if config.mode == "semantic":
        from app.cache.semantic import SemanticMatcher
        matcher = SemanticMatcher(config.threshold)     # imports scikit-learn, once, here
    return Cache(config, backend, matcher)
