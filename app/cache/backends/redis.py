"""The shared backend: one Redis server for every process of every instance.

Keys (prefix `switchboard:cache:`): `e:<key>` the entry, with Redis expiry; `lru` a sorted
set of keys by last use; `expiry` keys by expiry time; `sizes` a hash of entry sizes and
`bytes` their sum; `counters` a hash of hits / semantic_hits / misses; `log` a stream
of (partition, key, text) trimmed to about LOG_LIMIT records; `generation` bumped by a
flush. Writes run as Lua scripts so the bookkeeping stays consistent with many writers;
the size bound counts entry bytes (Redis' own per-key overhead comes on top). The scripts
name keys they compute, so they suit a single Redis server, not a cluster.
"""
from __future__ import annotations

import time
from typing import NamedTuple

from app.cache.backends import LOG_LIMIT, LogPage, Record
from app.storage.redis_client import redis_client

PREFIX = "switchboard:cache:"
COUNTERS = ("hits", "semantic_hits", "misses")

# forget(k): remove an entry and its bookkeeping; returns whether the entry existed.
_FORGET = """
local p = ARGV[1]
local function forget(k)
  local existed = redis.call('DEL', p .. 'e:' .. k)
  local size = tonumber(redis.call('HGET', p .. 'sizes', k) or '0')
  redis.call('HDEL', p .. 'sizes', k)
  redis.call('ZREM', p .. 'lru', k)
  redis.call('ZREM', p .. 'expiry', k)
  redis.call('DECRBY', p .. 'bytes', size)
  return existed
end
local function expired(now, limit)
  local keys = redis.call('ZRANGEBYSCORE', p .. 'expiry', '-inf', now, 'LIMIT', 0, limit)
  for _, k in ipairs(keys) do forget(k) end
end
"""
# ARGV: prefix, key, value, ttl ms, now ms, byte bound
_PUT = _FORGET + """
expired(ARGV[5], 100)
local k, size = ARGV[2], string.len(ARGV[3])
local old = tonumber(redis.call('HGET', p .. 'sizes', k) or '0')
redis.call('SET', p .. 'e:' .. k, ARGV[3], 'PX', ARGV[4])
redis.call('HSET', p .. 'sizes', k, size)
redis.call('INCRBY', p .. 'bytes', size - old)
redis.call('ZADD', p .. 'lru', ARGV[5], k)
redis.call('ZADD', p .. 'expiry', ARGV[5] + ARGV[4], k)
while tonumber(redis.call('GET', p .. 'bytes') or '0') > tonumber(ARGV[6]) do
  local oldest = redis.call('ZRANGE', p .. 'lru', 0, 0)[1]
  if not oldest then break end
  forget(oldest)
end
"""
# ARGV: prefix, key
_DELETE = _FORGET + "return forget(ARGV[2])"
# ARGV: prefix, now ms
_STATS = _FORGET + """
expired(ARGV[2], 10000)
return {redis.call('ZCARD', p .. 'lru'), tonumber(redis.call('GET', p .. 'bytes') or '0')}
"""
# ARGV: prefix
_FLUSH = """
local p = ARGV[1]
while true do
  local keys = redis.call('ZRANGE', p .. 'lru', 0, 999)
  if #keys == 0 then break end
  for _, k in ipairs(keys) do redis.call('DEL', p .. 'e:' .. k) end
  redis.call('ZREM', p .. 'lru', unpack(keys))
end
redis.call('DEL', p .. 'expiry', p .. 'sizes', p .. 'bytes', p .. 'log')
return redis.call('INCR', p .. 'generation')
"""


class _Cursor(NamedTuple):
    generation: int
    last_id: str


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, max_bytes: int, timeout: float):
        self.max_bytes = max_bytes
        self._client = redis_client(url, timeout)
        self._put = self._client.register_script(_PUT)
        self._delete = self._client.register_script(_DELETE)
        self._stats = self._client.register_script(_STATS)
        self._flush = self._client.register_script(_FLUSH)

    def get(self, key: str) -> bytes | None:
        pipe = self._client.pipeline(transaction=False)
        pipe.get(PREFIX + "e:" + key)
        pipe.zadd(PREFIX + "lru", {key: _now_ms()}, xx=True)
        return pipe.execute()[0]

    def put(self, key: str, value: bytes, ttl: float) -> None:
        self._put(args=[PREFIX, key, value, max(1, int(ttl * 1000)), _now_ms(), self.max_bytes])

    def delete(self, key: str) -> bool:
        return bool(self._delete(args=[PREFIX, key]))

    def flush(self) -> None:
        self._flush(args=[PREFIX])

    def add_counts(self, counts: dict[str, int]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for name, count in counts.items():
            pipe.hincrby(PREFIX + "counters", name, count)
        pipe.execute()

    def stats(self) -> dict[str, int]:
        entries, size = self._stats(args=[PREFIX, _now_ms()])
        counters = self._client.hgetall(PREFIX + "counters")
        found = {"entries": int(entries), "bytes": int(size)}
        found.update({name: int(counters.get(name.encode(), 0)) for name in COUNTERS})
        return found

    def append(self, record: Record) -> None:
        self._client.xadd(PREFIX + "log", {"p": record.partition, "k": record.key,
                                            "t": record.text.encode()},
                          maxlen=LOG_LIMIT, approximate=True)

    def read(self, cursor: _Cursor | None, limit: int) -> LogPage:
        generation = int(self._client.get(PREFIX + "generation") or 0)
        restarted = cursor is None or cursor.generation != generation
        after = "0-0" if restarted else cursor.last_id
        entries = self._client.xrange(PREFIX + "log", min=f"({after}", count=limit)
        records = [Record(fields[b"p"].decode(), fields[b"k"].decode(), fields[b"t"].decode())
                   for _, fields in entries]
        last_id = entries[-1][0].decode() if entries else after
        return LogPage(records, _Cursor(generation, last_id), restarted)


def _now_ms() -> int:
    return int(time.time() * 1000)
