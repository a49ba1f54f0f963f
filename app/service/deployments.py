"""Per-deployment health: cooldowns, in-flight counts, latency, and the choice among them.

Several `model_list` entries with one model_name are deployments of one model. A
deployment that fails `allowed_fails` times within `fail_window` seconds is skipped for
`cooldown_time` seconds, then comes back by itself. State is shared by a worker's threads;
the cooldown store can be swapped for one shared by every worker and instance.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from app.providers.base import Target

log = logging.getLogger("switchboard")
STRATEGIES = ("simple-shuffle", "least-busy", "lowest-latency")
LATENCY_SMOOTHING = 0.3  # weight of the newest sample in the moving average


@dataclass
class CooldownPolicy:
    allowed_fails: int = 3
    fail_window: float = 60.0
    cooldown_time: float = 30.0


class MemoryCooldowns:
    """Cooldown state in this process: failure times and cooled-until per deployment."""

    def __init__(self, policy: CooldownPolicy):
        self.policy = policy
        self._failures: dict[str, deque] = {}
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def record_failure(self, deployment: str, now: float, hold: float | None = None) -> None:
        policy = self.policy
        with self._lock:
            times = self._failures.setdefault(deployment, deque(maxlen=max(policy.allowed_fails, 1) * 4))
            times.append(now)
            recent = sum(1 for t in times if now - t <= policy.fail_window)
            if recent >= policy.allowed_fails:
                self._until[deployment] = now + max(policy.cooldown_time, hold or 0.0)

    def cooling_until(self, deployment: str, now: float) -> float | None:
        until = self._until.get(deployment)
        return until if until is not None and until > now else None

    def recent_failures(self, deployment: str, now: float) -> int:
        return sum(1 for t in self._failures.get(deployment, ()) if now - t <= self.policy.fail_window)


class RedisCooldowns:
    """Cooldown state in Redis, shared by every worker and instance.

    Failures are a sorted set of timestamps per deployment (trimmed to the window); the
    cooldown is a key that expires by itself. Wall-clock time, since processes share it.
    A Redis fault never fails a request: the deployment is then treated as healthy.
    """

    _RECORD = """
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
    redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2]) + 1)
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
        redis.call('SET', KEYS[2], ARGV[1] + ARGV[5], 'PX', math.ceil(ARGV[5] * 1000))
    end
    return 1
    """

    def __init__(self, policy: CooldownPolicy, client, prefix: str = "switchboard:cooldown:"):
        self.policy = policy
        self.client = client
        self.prefix = prefix
        self._record = client.register_script(self._RECORD)

    def record_failure(self, deployment: str, now: float, hold: float | None = None) -> None:
        policy = self.policy
        wall = time.time()
        try:
            self._record(keys=[f"{self.prefix}fails:{deployment}", f"{self.prefix}until:{deployment}"],
                         args=[wall, policy.fail_window, policy.allowed_fails,
                               f"{wall}:{random.random()}", max(policy.cooldown_time, hold or 0.0)])
        except Exception:
            log.warning("cooldown store unreachable; failure of %s not shared", deployment)

    def cooling_until(self, deployment: str, now: float) -> float | None:
        try:
            until = self.client.get(f"{self.prefix}until:{deployment}")
        except Exception:
            return None
        if until is None:
            return None
        remaining = float(until) - time.time()
        return now + remaining if remaining > 0 else None

    def recent_failures(self, deployment: str, now: float) -> int:
        try:
            return int(self.client.zcount(f"{self.prefix}fails:{deployment}",
                                          time.time() - self.policy.fail_window, "+inf"))
        except Exception:
            return 0


@dataclass
class _Stats:
    in_flight: int = 0
    latency: float | None = None
    successes: int = 0
    failures: int = 0
    last_error: str | None = None


class DeploymentPool:
    def __init__(self, strategy: str = "simple-shuffle",
                 cooldowns: MemoryCooldowns | RedisCooldowns | None = None):
        self.strategy = strategy
        self.cooldowns = cooldowns or MemoryCooldowns(CooldownPolicy())
        self._stats: dict[str, _Stats] = {}
        self._lock = threading.Lock()

    def _stat(self, deployment: str) -> _Stats:
        stat = self._stats.get(deployment)
        if stat is None:
            with self._lock:
                stat = self._stats.setdefault(deployment, _Stats())
        return stat

    def pick(self, targets: tuple[Target, ...], exclude: set[str],
             last_resort: bool = False) -> Target | None:
        """The next deployment to try: not excluded, not cooling down, chosen by the strategy.

        With `last_resort` (nothing else left to try) a cooling deployment is still better
        than a certain failure, so cooldowns are ignored when no healthy one remains.
        """
        now = time.monotonic()
        if len(targets) == 1:  # the common case costs one dictionary look-up
            target = targets[0]
            if target.deployment_id in exclude or (
                    not last_resort and self.cooldowns.cooling_until(target.deployment_id, now)):
                return None
            return target
        candidates = [t for t in targets if t.deployment_id not in exclude]
        ready = [t for t in candidates if not self.cooldowns.cooling_until(t.deployment_id, now)]
        if not ready and last_resort:
            ready = candidates
        if not ready:
            return None
        if self.strategy == "least-busy":
            low = min(self._stat(t.deployment_id).in_flight for t in ready)
            return random.choice([t for t in ready if self._stat(t.deployment_id).in_flight == low])
        if self.strategy == "lowest-latency":
            unknown = [t for t in ready if self._stat(t.deployment_id).latency is None]
            if unknown:
                return random.choice(unknown)  # measure every deployment before favouring one
            return min(ready, key=lambda t: self._stat(t.deployment_id).latency)
        weights = [target_weight(t) for t in ready]
        if not any(weights):
            return random.choice(ready)
        return random.choices(ready, weights=weights)[0]

    def started(self, target: Target) -> None:
        stat = self._stat(target.deployment_id)
        with self._lock:
            stat.in_flight += 1

    def finished(self, target: Target, seconds: float | None, error: str | None = None,
                 unhealthy: bool = False, hold: float | None = None) -> None:
        """Record how a call ended; `unhealthy` failures count towards a cooldown."""
        stat = self._stat(target.deployment_id)
        with self._lock:
            stat.in_flight -= 1
            if error is None:
                stat.successes += 1
                if seconds is not None:
                    stat.latency = seconds if stat.latency is None else (
                        LATENCY_SMOOTHING * seconds + (1 - LATENCY_SMOOTHING) * stat.latency)
            else:
                stat.failures += 1
                stat.last_error = error
        if unhealthy:
            self.cooldowns.record_failure(target.deployment_id, time.monotonic(), hold)

    def snapshot(self, targets: list[Target]) -> list[dict]:
        """State of each deployment for GET /health/deployments (wall-clock times)."""
        now_mono, now_wall = time.monotonic(), time.time()
        rows = []
        for target in targets:
            stat = self._stat(target.deployment_id)
            until = self.cooldowns.cooling_until(target.deployment_id, now_mono)
            rows.append({
                "deployment": target.deployment_id, "model_name": target.model_group,
                "model": target.model, "provider": target.provider,
                "state": "cooling_down" if until else "healthy",
                "cooling_down_until": None if until is None else round(now_wall + until - now_mono, 3),
                "recent_failures": self.cooldowns.recent_failures(target.deployment_id, now_mono),
                "in_flight": stat.in_flight, "successes": stat.successes, "failures": stat.failures,
                "latency_ms": None if stat.latency is None else round(stat.latency * 1000, 2),
                "last_error": stat.last_error,
            })
        return rows


def target_weight(target: Target) -> float:
    settings = target.settings
    if settings.get("weight") is not None:
        return float(settings["weight"])
    if settings.get("rpm") is not None:
        return float(settings["rpm"])
    return 1.0


def cooldown_store(policy: CooldownPolicy, redis_url: str | None, redis_timeout: float):
    """Shared through Redis when REDIS_URL is set, else per worker process."""
    if not redis_url:
        return MemoryCooldowns(policy)
    from app.storage.redis_client import redis_client
    return RedisCooldowns(policy, redis_client(redis_url, redis_timeout))
