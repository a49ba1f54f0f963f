"""rpm, tpm and max_parallel_requests in Redis, shared by every instance (REDIS_URL).

One Lua script reads, checks and counts, so Redis runs it atomically: two instances can
never both take a key's last slot. Requests in flight (for a key with max_parallel_requests)
are a sorted set of lease ids scored by when the lease runs out, so a crashed worker's
leases lapse by themselves. Redis names carry the key id in braces, which keeps one key's
counters in one cluster slot.

What a finished request really used replaces its prompt estimate in the tpm count. Only a
request holding a parallel slot calls Redis when it finishes (its slot must be free for the
client's next request); for the others the token correction waits in this process and goes
to Redis with the key's next admission, or within CORRECTION_SECONDS when none comes, so
most requests cost Redis one call. This process's own reads include what still waits.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time

from app.keys.limits import (WINDOW_SECONDS, Admission, Usage, rate_limit_hit, rate_limited,
                             window_of)

log = logging.getLogger("switchboard.keys")
CORRECTION_SECONDS = 0.2   # longest a finished request's token correction waits here

_ADMIT = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local correction = tonumber(ARGV[10])
if correction ~= 0 then
  tokens = math.max(0, tokens + correction)
  redis.call('SET', KEYS[2], tokens, 'EX', ARGV[7])
end
local in_flight = 0
if ARGV[8] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5])
  in_flight = redis.call('ZCARD', KEYS[3])
end
local wanted = tonumber(ARGV[4])
local counted = tonumber(ARGV[11])
if (tonumber(ARGV[1]) >= 0 and requests + counted > tonumber(ARGV[1]))
    or (tonumber(ARGV[2]) >= 0 and tokens + wanted > tonumber(ARGV[2]))
    or (tonumber(ARGV[3]) >= 0 and in_flight + 1 > tonumber(ARGV[3])) then
  return {0, requests, tokens, in_flight}
end
redis.call('INCRBY', KEYS[1], counted)
redis.call('EXPIRE', KEYS[1], ARGV[7])
if wanted > 0 then
  redis.call('INCRBY', KEYS[2], wanted)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
if ARGV[8] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[8])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
  in_flight = in_flight + 1
end
return {1, requests + counted, tokens + wanted, in_flight}
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

# A slice given back: its unused requests (while their window lasts) and tokens.
_GIVE_BACK = """
local function add(name, delta, create)
  if delta == 0 or (not create and redis.call('EXISTS', name) == 0) then return end
  if redis.call('INCRBY', name, delta) < 0 then
    redis.call('SET', name, 0, 'KEEPTTL')
  end
  redis.call('EXPIRE', name, ARGV[3])
end
add(KEYS[1], tonumber(ARGV[1]), false)
add(KEYS[2], tonumber(ARGV[2]), true)
return 1
"""


def served_without_limits(key_id: str) -> None:
    log.warning("rate-limit store unreachable; key %s served without its limits", key_id)


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisCounters:
    def __init__(self, client, lease_seconds: float, prefix: str = "switchboard:key:"):
        self.client = client
        self.lease_seconds = lease_seconds
        self.prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._lock = threading.Lock()
        self._corrections: dict[tuple[str, int], int] = {}  # (key id, window) -> tokens
        self._sending = False                               # a sender thread runs
        self._sender_pid: int | None = None

    def _name(self, key_id: str, what: str) -> str:
        return f"{self.prefix}{{{key_id}}}:{what}"

    def admit(self, admission: Admission, now: float, refuse: bool = True) -> Usage | None:
        """Count the admission (`admission.requests` requests), or raise the 429 for the limit
        it breaks (without `refuse`: None, nothing counted)."""
        key = admission.key
        correction = self._take(key.id, admission.window)
        try:
            admitted, requests, tokens, in_flight = self._admit(
                keys=[self._name(key.id, f"requests:{admission.window}"),
                      self._name(key.id, f"tokens:{admission.window}"),
                      self._name(key.id, "in_flight")],
                args=[_limit(key.rpm_limit), _limit(key.tpm_limit),
                      _limit(key.max_parallel_requests), admission.tokens, now,
                      now + self.lease_seconds, 2 * WINDOW_SECONDS, admission.redis_lease or "",
                      math.ceil(self.lease_seconds), correction, admission.requests])
        except Exception:
            self._defer(key.id, admission.window, correction)
            raise
        usage = Usage(requests=int(requests), tokens=int(tokens), in_flight=int(in_flight))
        if not admitted and not refuse:
            return None
        if not admitted:
            raise rate_limited(key, rate_limit_hit(key, usage, admission.tokens), usage,
                               admission.tokens, now)
        return usage

    def settle(self, key_id: str, lease: str | None, window: int, token_delta: int) -> None:
        """Free the request's slot (now) and correct the token count of `window` by
        `token_delta` (with it, or later when the request held no slot)."""
        if lease:
            self._send(key_id, lease, window, token_delta, self.client)
        else:
            self._defer(key_id, window, token_delta)

    def give_back(self, key_id: str, window: int, requests: int, tokens: int) -> None:
        """Return a slice's unused requests and correct its tokens in `window`; what Redis
        does not take is lost (its requests then count until their window ends)."""
        try:
            self._give_back(keys=[self._name(key_id, f"requests:{window}"),
                                  self._name(key_id, f"tokens:{window}")],
                            args=[requests, tokens, 2 * WINDOW_SECONDS])
        except Exception as exc:
            log.warning("rate-limit store unreachable; a slice of key %s is not given back "
                        "(%s)", key_id, type(exc).__name__)

    def _send(self, key_id: str, lease: str, window: int, token_delta: int, client) -> None:
        self._settle(keys=[self._name(key_id, "in_flight"),
                           self._name(key_id, f"tokens:{window}")],
                     args=[lease, token_delta, 2 * WINDOW_SECONDS], client=client)

    def _take(self, key_id: str, window: int) -> int:
        """The token correction waiting for the key's `window` (those of windows that are
        over are dropped: they no longer count)."""
        with self._lock:
            for waiting in [w for k, w in self._corrections if k == key_id and w < window]:
                del self._corrections[(key_id, waiting)]
            return self._corrections.pop((key_id, window), 0)

    def _defer(self, key_id: str, window: int, token_delta: int) -> None:
        if not token_delta:
            return
        with self._lock:
            slot = (key_id, window)
            self._corrections[slot] = self._corrections.get(slot, 0) + token_delta
            if not self._sending or self._sender_pid != os.getpid():  # a fork starts its own
                self._sending, self._sender_pid = True, os.getpid()
                threading.Thread(target=self._send_corrections, name="tpm-corrections",
                                 daemon=True).start()

    def _send_corrections(self) -> None:
        """Every CORRECTION_SECONDS, send what waits in one pipeline; what Redis does not take
        waits for the next round while its window lasts. Ends when nothing waits."""
        failing = False
        while True:
            time.sleep(CORRECTION_SECONDS)
            with self._lock:
                waiting, self._corrections = self._corrections, {}
                if not waiting:
                    self._sending = False
                    return
            try:
                pipeline = self.client.pipeline(transaction=False)
                for (key_id, window), delta in waiting.items():
                    self._send(key_id, "", window, delta, pipeline)
                pipeline.execute()
                failing = False
            except Exception as exc:
                current = window_of(time.time())
                for (key_id, window), delta in waiting.items():
                    if window >= current:
                        self._defer(key_id, window, delta)
                if not failing:
                    log.warning("rate-limit store unreachable; token counts are sent when it "
                                "answers (%s)", type(exc).__name__)
                failing = True

    def extend(self, key_id: str, lease: str, until: float) -> None:
        """Move a running request's lease on (XX: a lease already settled stays gone)."""
        name = self._name(key_id, "in_flight")
        self.client.zadd(name, {lease: until}, xx=True)
        self.client.expire(name, math.ceil(self.lease_seconds))

    def peek(self, key_id: str, window: int) -> Usage:
        requests, tokens = self.client.mget(self._name(key_id, f"requests:{window}"),
                                            self._name(key_id, f"tokens:{window}"))
        waiting = self._corrections.get((key_id, window), 0)
        return Usage(requests=int(requests or 0), tokens=max(0, int(tokens or 0) + waiting))
