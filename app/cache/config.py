"""The `cache` config section, validated at start by its own schema.

```yaml
cache:
  enabled: true              # off by default: with temperature > 0 a cache changes answers
  mode: semantic             # exact | semantic
  ttl: 3600                  # seconds an entry lives (a request may ask for another)
  similarity_threshold: 0.75 # semantic mode: lowest TF-IDF cosine that may answer
  max_size_mb: 1024          # least recently used entries go first beyond this (disk: reads
                             # within a second of each other count as one use)
  backend: disk              # disk (diskcache, shared by the workers of one machine) | redis
  dir: data/cache            # disk backend; default {SWITCHBOARD_DATA_DIR}/cache
```
The redis backend reads REDIS_URL and is shared by every instance that uses it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from marshmallow import RAISE, Schema, fields, validate

from app.config import ConfigError, Settings

# From bench/data/semantic_pairs.jsonl (bench/cache_bench.py prints the sweep): the lowest
# threshold, in steps of 0.05, at which the cosine alone still turns most near-misses away in
# both a fresh and a filled index, so the near-miss guard is a second line and not the only
# one. The guarded matcher gives no false hit there (tests/test_cache_semantic.py).
DEFAULT_THRESHOLD = 0.75
DEFAULT_TTL = 3600.0
DEFAULT_MAX_SIZE_MB = 1024.0


class _CacheSection(Schema):
    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=False)
    mode = fields.String(load_default="exact", validate=validate.OneOf(("exact", "semantic")))
    ttl = fields.Float(load_default=DEFAULT_TTL,
                       validate=validate.Range(min=0, min_inclusive=False))
    similarity_threshold = fields.Float(load_default=DEFAULT_THRESHOLD, validate=validate.Range(
        min=0, max=1, min_inclusive=False))
    max_size_mb = fields.Float(load_default=DEFAULT_MAX_SIZE_MB,
                               validate=validate.Range(min=0, min_inclusive=False))
    backend = fields.String(load_default="disk", validate=validate.OneOf(("disk", "redis")))
    dir = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool
    mode: str                 # exact | semantic
    ttl: float
    threshold: float
    max_bytes: int
    backend: str              # disk | redis
    directory: str
    redis_url: str | None


def load_config(settings: Settings) -> CacheConfig:
    section = settings.section("cache", _CacheSection())
    redis_url = settings.env.get("REDIS_URL") or None
    if section["enabled"] and section["backend"] == "redis" and not redis_url:
        raise ConfigError("config cache.backend: redis needs the REDIS_URL environment variable")
    directory = settings.env_value(section["dir"]) or os.path.join(settings.data_dir, "cache")
    return CacheConfig(section["enabled"], section["mode"], section["ttl"],
                       section["similarity_threshold"], int(section["max_size_mb"] * 1024 * 1024),
                       section["backend"], directory, redis_url)
