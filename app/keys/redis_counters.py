"""rpm, tpm and max_parallel_requests in Redis, shared by every instance (REDIS_URL).

One Lua script reads, checks and counts, so Redis runs it atomically: two instances can
never both take a key's last slot. Requests in flight are a sorted set of lease ids
scored by when the lease runs out, so a crashed worker's leases lapse by themselves.
Redis names carry the key id in braces, which keeps one key's counters in one cluster slot.
"""
from __future__ import annotations

import math

from app.keys.limits import WINDOW_SECONDS, Admission, Usage, rate_limit_hit, rate_limited

_ADMIT = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
local in_flight = redis.call('ZCARD', KEYS[3])
local wanted = tonumber(ARGV[4])
if (tonumber(ARGV[1]) >= 0 and requests + 1 > tonumber(ARGV[1]))
    or (tonumber(ARGV[2]) >= 0 and tokens + wanted > tonumber(ARGV[2]))
    or (tonumber(ARGV[3]) >= 0 and in_flight + 1 > tonumber(ARGV[3])) then
  return {0, requests, tokens, in_flight}
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[7])
if wanted > 0 then
  redis.call('INCRBY', KEYS[2], wanted)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8])
redis.call('EXPIRE', KEYS[3], ARGV[9])
return {1, requests + 1, tokens + wanted, in_flight + 1}
"""

_SETTLE = """
redis.call('ZREM', KEYS[1], ARGV[1])
local delta = tonumber(ARGV[2])
if delta ~= 0 then
  if redis.call('INCRBY', KEYS[2], delta) < 0 then
    redis.call('SET', KEYS[2], 0, 'KEEPTTL')
  end
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisCounters:
    def __init__(self, client, lease_seconds: float, prefix: str = "switchboard:key:"):
        self.client = client
        self.lease_seconds = lease_seconds
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)

    def _name(self, key_id: str, what: str) -> str:
        return f"{self.prefix}{{{key_id}}}:{what}"

    def admit(self, admission: Admission, now: float) -> Usage:
        """Count the request, or raise the 429 for the limit it breaks."""
        key = admission.key
        admitted, requests, tokens, in_flight = self._admit(
            keys=[self._name(key.id, f"requests:{admission.window}"),
                  self._name(key.id, f"tokens:{admission.window}"),
                  self._name(key.id, "in_flight")],
            args=[_limit(key.rpm_limit), _limit(key.tpm_limit),
                  _limit(key.max_parallel_requests), admission.tokens, now,
                  now + self.lease_seconds, 2 * WINDOW_SECONDS, admission.redis_lease,
                  math.ceil(self.lease_seconds)])
        usage = Usage(requests=int(requests), tokens=int(tokens), in_flight=int(in_flight))
        if not admitted:
            raise rate_limited(key, rate_limit_hit(key, usage, admission.tokens), usage,
                               admission.tokens, now)
        return usage

    def settle(self, key_id: str, lease: str, window: int, token_delta: int) -> None:
        """Free the request's slot and correct the token count of `window` by `token_delta`."""
        self._settle(keys=[self._name(key_id, "in_flight"),
                           self._name(key_id, f"tokens:{window}")],
                     args=[lease, token_delta, 2 * WINDOW_SECONDS])

    def extend(self, key_id: str, lease: str, until: float) -> None:
        """Move a running request's lease on (XX: a lease already settled stays gone)."""
        name = self._name(key_id, "in_flight")
        self.client.zadd(name, {lease: until}, xx=True)
        self.client.expire(name, math.ceil(self.lease_seconds))

    def peek(self, key_id: str, window: int) -> Usage:
        requests, tokens = self.client.mget(self._name(key_id, f"requests:{window}"),
                                            self._name(key_id, f"tokens:{window}"))
        return Usage(requests=int(requests or 0), tokens=int(tokens or 0))
