"""Holding each virtual key to its allowed models, budget and rate limits.

Before the call: refuse a model the key may not use, then reserve the request's estimated
cost against the budget and count it towards rpm / tpm / max_parallel_requests. After it
(when its event is published): release its slot, add its real cost to the key's spend and
correct its token count. A key without max_parallel_requests is counted in the store by
slices of several requests, taken and given back by this worker (app/keys/allowance.py);
one with it, request by request (settled on PostgreSQL in one statement with the other
requests finishing meanwhile: app/keys/group_commit.py). The reservation is the most the request can cost
(app.usage.quote): the prompt counted with tiktoken, plus `n` x `max_tokens` of output (the
model's output limit when absent), at the model's prices.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Callable

from app.errors import ProxyError
from app.keys.allowance import Allowances
from app.keys.slices import Slice
from app.keys.limits import Admission, Usage, rate_headers, window_of
from app.keys.redis_counters import RedisCounters, served_without_limits
from app.keys.group_commit import GroupCommit
from app.keys.sql_counters import Settle, SqlCounters
from app.keys.store import KeyRecord
from app.usage.quote import prompt_tokens, worst_case

if TYPE_CHECKING:  # the service layer calls in here, never the reverse
    from app.service.events import RequestContext, RequestEvent
    from app.service.router import Router

log = logging.getLogger("switchboard.keys")


def model_not_allowed(key: KeyRecord, model: str) -> ProxyError:
    return ProxyError(f"Key {key.label} may not use model {model!r}; it may use: "
                      f"{', '.join(key.models)}.", status=403, type="invalid_request_error",
                      param="model", code="model_not_allowed")


class LeaseIds:
    """Lease ids unique across processes and instances without a random draw (a system call)
    per request: a random prefix per process, then a counter."""

    def __init__(self):
        self._pid: int | None = None
        self._prefix = ""
        self._count = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():  # a forked worker draws its own prefix
            self._pid, self._prefix, self._count = os.getpid(), uuid.uuid4().hex, itertools.count()
        return f"{self._prefix}{next(self._count):x}"


class Enforcer:
    def __init__(self, sql: SqlCounters, redis: RedisCounters | None, router: Router,
                 lease_seconds: float, give_back: Callable[[Slice], None],
                 flush: Callable[[Slice, float], None]):
        """`give_back(slice)` returns a slice to the store, `flush(slice, cost)` adds an open
        slice's finished spend to its key's (app/keys/allowance.py)."""
        self.sql = sql
        self.redis = redis
        self.router = router
        self.lease_seconds = lease_seconds
        self._lease_ids = LeaseIds()
        # On PostgreSQL, requests finishing together are settled in one statement
        # (app/keys/group_commit.py). Not on SQLite: there a batch's writer polls for the
        # file's lock against the other workers' writers, and every settle of its worker
        # waited on that one poller (tails of seconds under load); each settles alone.
        self._settles = GroupCommit(sql.settle_many) if sql.postgres else None
        self.allowances = Allowances(sql, redis, self._lease_ids.next, give_back, flush,
                                     self._settle)
        # Admitted requests of this process awaiting their event. A client may reuse an
        # x-request-id, so the context's start time tells two requests apart.
        self._pending: dict[tuple[str, float], tuple[Admission, float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: KeyRecord, body: dict, context: RequestContext) -> Admission | None:
        """Admit the request or raise the 403 / 429 that refuses it."""
        self.check_models(key, body)
        now = time.time()
        tokens, cost = self._estimate(body, key.max_budget is not None,
                                      key.tpm_limit is not None)
        admission = Admission(key, tokens, cost, window_of(now))
        if key.max_parallel_requests is None:
            usage = self.allowances.admit(admission, now)
        else:
            usage = self._admit_alone(admission, now)
        admission.headers = rate_headers(key, usage, now)
        self._remember(context, admission)
        return admission

    def _admit_alone(self, admission: Admission, now: float) -> Usage:
        """A key with max_parallel_requests: each request holds a slot of its own, counted in
        Redis (with rpm / tpm) when it is set, else in SQL (with the budget)."""
        key, usage = admission.key, Usage()
        sql_rates = self.redis is None
        if key.max_budget is not None or sql_rates:
            admission.sql_lease, admission.sql_rates = self._lease_ids.next(), sql_rates
            usage = self.sql.admit(admission, sql_rates, now)
        if self.redis is None:
            return usage
        admission.redis_rates, admission.redis_lease = True, self._lease_ids.next()
        try:
            return self.redis.admit(admission, now)
        except ProxyError:
            self._release(admission)
            raise
        except Exception:  # Redis unreachable: serve without the rate limits, say so
            served_without_limits(key.id)
            admission.redis_lease, admission.redis_rates = None, False
            return usage

    @staticmethod
    def check_models(key: KeyRecord, body: dict) -> None:
        """403 for a model (or fallback) the key may not use."""
        for model in (body["model"], *(body.get("fallbacks") or ())):
            if not key.allows(model):
                raise model_not_allowed(key, model)

    def peek_headers(self, key: KeyRecord) -> dict[str, str]:
        """The key's x-ratelimit-* headers for a response that counted nothing."""
        if key.rpm_limit is None and key.tpm_limit is None:
            return {}
        now = time.time()
        try:
            usage = self.allowances.known(key.id, self.redis.peek(key.id, window_of(now))
                                          if self.redis is not None
                                          else self.sql.peek(key.id, now))
        except Exception:
            log.warning("rate-limit store unreachable; no x-ratelimit headers")
            return {}
        return rate_headers(key, usage, now)

    def settle(self, event: RequestEvent, store_up: bool = True) -> None:
        """Account a finished request of a key: free its slot, add its cost to the spend (raise
        when that needs the store and it is not `store_up`)."""
        with self._lock:
            found = self._pending.pop((event.request_id, event.started_at), None)
        admission = found[0] if found else None
        cost = event.cost or 0.0
        if admission is not None and admission.allowance is not None:
            window, delta = self._token_correction(admission, event)
            self.allowances.finish(admission, cost, event.prompt_tokens +
                                   event.completion_tokens - admission.tokens)
            if admission.redis_rates:
                self._settle_redis(event.key_id, admission.redis_lease, window, delta)
            return
        if not store_up:
            raise ConnectionError("the key store is unreachable")
        if admission is None:
            if cost:
                self._settle(Settle(event.key_id, None, cost, None, 0))
            return
        window, delta = self._token_correction(admission, event)
        try:
            self._settle(Settle(event.key_id, admission.sql_lease, cost,
                                window if admission.sql_rates else None, delta))
        finally:
            if admission.redis_rates:
                self._settle_redis(event.key_id, admission.redis_lease, window, delta)

    def _settle(self, settle: Settle) -> None:
        if self._settles is None:
            self.sql.settle(settle.key_id, [settle.lease] if settle.lease else (), settle.cost,
                            settle.window, settle.delta, settle.requests)
        else:
            self._settles.run(settle)

    def _settle_redis(self, key_id: str, lease: str | None, window: int, delta: int) -> None:
        """A slot Redis cannot free now lapses with its lease; the request stays settled."""
        try:
            self.redis.settle(key_id, lease, window, delta)
        except Exception as exc:
            log.warning("rate-limit store unreachable; slot of key %s lapses with its lease "
                        "(%s)", key_id, type(exc).__name__)

    def _token_correction(self, admission: Admission, event: RequestEvent) -> tuple[int, int]:
        """(window, tokens to add): what the request really used minus what was counted when
        it was admitted. A window that is over gets no refund, the current one no credit."""
        delta = event.prompt_tokens + event.completion_tokens - admission.tokens
        current = window_of(time.time())
        if admission.window == current:
            return current, delta
        return current, max(delta, 0)

    def _release(self, admission: Admission) -> None:
        if admission.allowance is not None:
            self.allowances.release(admission)
        if admission.sql_lease:
            self.sql.release(admission.key.id, admission.sql_lease)

    def extend(self, admission: Admission) -> None:
        """The request is still running (a long stream): its slot and reservation last
        another lease from now."""
        until = time.time() + self.lease_seconds
        lease = admission.sql_lease or (admission.allowance and admission.allowance.lease)
        if lease:
            self.sql.extend(lease, until)
        if admission.redis_lease:
            try:
                self.redis.extend(admission.key.id, admission.redis_lease, until)
            except Exception as exc:
                log.warning("rate-limit store unreachable; lease of key %s not extended (%s)",
                            admission.key.id, type(exc).__name__)
        with self._lock:
            if self._pending.pop(admission.request, None) is not None:
                self._pending[admission.request] = (admission, time.monotonic())

    def _remember(self, context: RequestContext, admission: Admission) -> None:
        """Keep the admission for its event; forget ones whose event never came (a crash in
        the request) once their lease is over."""
        now = time.monotonic()
        admission.request = (context.request_id, context.started_at)
        with self._lock:
            self._pending[admission.request] = (admission, now)
            while self._pending:
                oldest = next(iter(self._pending))
                if now - self._pending[oldest][1] < self.lease_seconds:
                    break
                del self._pending[oldest]

    def _estimate(self, body: dict, budgeted: bool, counted: bool) -> tuple[int, float]:
        """(prompt tokens, the most the request can cost), on the deployment the proxy
        would try first."""
        if not budgeted and not counted:
            return 0, 0.0
        try:
            target = self.router.resolve(body["model"])[0]
        except ProxyError:
            return 0, 0.0  # the service refuses the model itself
        if not budgeted:
            return prompt_tokens(target, body)[0], 0.0
        return worst_case(target, body)
