"""Per-worker allowances: a worker takes a slice of a key's budget, requests and tokens in one
write and admits that key's requests against it with no write at all.

Counting each request in the store cost two writes per keyed request (its admission and its
settle), each waiting for the store's write lock against every other worker: a keyed
request served at 0.4-0.6x the rate of one without a key. A slice is an ordinary lease row
(app/keys/sql_counters.py) whose reservation, request count and token count stand for
several requests; when the slice is given back its real spend, and the requests and tokens
it did not use, go to the store in one write.

A slice holds what the key's requests took in this worker over the last SLICE_SECONDS (one
request at first), capped at SHARE of what the key had left when this worker last counted
it. So a key used now and then, or near one of its limits, gets slices of one request: it
is counted exactly as per request. The bounds this keeps:
- a budget is never overspent (a slice's cost is reserved in the store like one request's
  estimate, and each request is held to its worst case within its slice);
- rpm and tpm are never exceeded; a key may be refused before a limit while other workers
  hold unused parts of their slices, each at most SHARE of what was left when it was taken;
- a slice is given back by the last of its requests in flight to finish (before its
  answer's last byte), closing it if it still admitted; an untouched slice taken ahead, in
  the background within 2 x SLICE_SECONDS. So once a key's requests are all answered its
  spend in the store is theirs (read from any worker or instance); while they keep coming,
  it lags by the slices open at that moment;
- a key changed or deleted through another instance is held to its new settings within
  SLICE_SECONDS (through this instance: at once, every worker reads its keys again);
- a killed worker's slices lapse with their lease, like a request's; the spend of its
  finished requests in them is in the ledger but not in the key's spend.

Keys with max_parallel_requests are not sliced: each of their requests holds its own slot.
"""
from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from typing import Callable

from app.errors import ProxyError
from app.keys.limits import Admission, Usage, has_rate_limits, window_of
from app.keys.redis_counters import RedisCounters, served_without_limits
from app.keys.sql_counters import Settle, SqlCounters
from app.keys.slices import SLICE_SECONDS, Rate, Slice, known_counts
from app.keys.store import KeyRecord
from app.storage.deadline import bounded

SHARE = 0.1            # a slice takes at most this part of what the key has left
KEEPER_IDLE_ROUNDS = 20  # the keeper ends after this many rounds without a slice
REFILL_FROM = 4        # a key's next slice is taken ahead once its slices hold this many


def _one(grant: Admission, admission: Admission) -> Admission:
    """The grant cut down to the one request `admission`."""
    return dataclasses.replace(grant, tokens=admission.tokens, cost=admission.cost, requests=1)


class Allowances:
    def __init__(self, sql: SqlCounters, redis: RedisCounters | None,
                 new_lease: Callable[[], str], give_back: Callable[[Slice], None],
                 flush: Callable[[Slice, float], None], settle: Callable[[Settle], None]):
        """`give_back(slice)` returns a slice (KeyService: with `write_back`, and what the
        store does not take is settled when it answers again), `flush(slice, cost)` adds an
        open slice's finished spend to its key's (the same way); neither raises. `settle`
        writes one settle to the store (the Enforcer's: grouped on PostgreSQL)."""
        self.sql = sql
        self.redis = redis
        self._settle = settle
        self._new_lease = new_lease
        self._give_back = give_back
        self._flush = flush
        self._lock = threading.Lock()
        self._open: dict[str, Slice] = {}        # key id -> the slice admitting its requests
        self._next: dict[str, Slice] = {}        # key id -> the slice taken ahead of need
        self._held: dict[str, set[Slice]] = {}   # key id -> its slices not given back yet
        self._granting: dict[str, threading.Event] = {}  # key id -> set once its grant is made
        self._rates: dict[str, Rate] = {}
        self._left: dict[str, tuple[int, Usage]] = {}  # key id -> (window, counts at grant)
        self._idle: list[Slice] = []             # closed, nothing in flight: to give back
        self._keeper_pid: int | None = None
        self._wake = threading.Event()           # the keeper has slices to give back

    def admit(self, admission: Admission, now: float) -> Usage:
        """Admit the request within this worker's slice of its key, taking a new slice when
        there is none or it is spent; raise the store's 429 / 401 when no slice is left.
        While one request takes a slice, the key's others wait for it (as long as the store
        would make them wait)."""
        key, moment = admission.key, time.monotonic()
        wait_until = moment + bounded(self.sql.db.timeout)
        with self._lock:
            self._rates.setdefault(key.id, Rate(moment)).count(moment)
        while True:
            with self._lock:
                current = self._usable(admission)
                if current is not None:
                    usage = self._take(current, admission)
                    self._refill(current, admission)
                    return usage
                granting = self._granting.get(key.id)
                left = wait_until - time.monotonic()
                if granting is None or left <= 0:
                    size = self._size(key, admission)
                    mine = self._granting.setdefault(key.id, threading.Event())
                    break
            granting.wait(left)
        try:
            granted = self._grant(admission, now, size)
        finally:
            with self._lock:
                if self._granting.get(key.id) is mine:
                    del self._granting[key.id]
            mine.set()
        with self._lock:
            replaced = self._open.get(key.id)
            if replaced is not None:
                self._close(replaced)
            self._open[key.id] = granted
            self._left[key.id] = (admission.window, granted.usage)
            self._keep()
            return self._take(granted, admission)

    def _usable(self, admission: Admission) -> Slice | None:
        """The slice this request can be admitted on (lock held): the open one, else the one
        taken ahead, which opens; those that cannot admit it close."""
        key, moment = admission.key, time.monotonic()
        for pending in (self._open, self._next):
            piece = pending.pop(key.id, None)
            if piece is None:
                continue
            if piece.usable_for(key, admission.window, moment) \
                    and piece.fits(admission.tokens, admission.cost):
                self._open[key.id] = piece
                return piece
            self._close(piece)
        return None

    def _refill(self, piece: Slice, admission: Admission) -> None:
        """Once a busy key's slice is half used or half its time is gone, take the next one
        in the background (lock held), so that its requests do not wait for the store."""
        key = admission.key
        if piece.requests < REFILL_FROM or key.id in self._next or key.id in self._granting \
                or (piece.used_requests * 2 < piece.requests
                    and time.monotonic() - piece.granted_at < SLICE_SECONDS / 2):
            return
        done = self._granting[key.id] = threading.Event()
        ahead = dataclasses.replace(admission, allowance=None, headers={}, request=None)
        threading.Thread(target=self._take_ahead, args=(ahead, self._size(key, admission), done),
                         name="key-allowance-ahead", daemon=True).start()

    def _take_ahead(self, admission: Admission, size: int, done: threading.Event) -> None:
        """Take the next slice; a failure here is left for a request to meet (and report)."""
        try:
            piece = self._grant(admission, time.time(), size)
        except Exception:
            piece = None
        with self._lock:
            if self._granting.get(admission.key.id) is done:
                del self._granting[admission.key.id]
            if piece is not None:
                self._next[admission.key.id] = piece
                self._left[admission.key.id] = (admission.window, piece.usage)
                self._keep()
        done.set()

    def known(self, key_id: str, counted: Usage) -> Usage:
        """The key's counts as the store has them, as this worker knows them better: without
        what its slices not given back yet hold unused."""
        window = window_of(time.time())
        with self._lock:
            return known_counts(counted, [piece for piece in self._held.get(key_id, ())
                                    if piece.window == window])

    def _take(self, piece: Slice, admission: Admission) -> Usage:
        admission.allowance = piece
        usage = piece.take(admission.tokens, admission.cost)
        if not piece.fits(admission.tokens, admission.cost):  # full: the next takes another
            self._close(piece)
        return usage

    def _size(self, key: KeyRecord, admission: Admission) -> int:
        """How many requests like this one the next slice holds."""
        rate = self._rates[key.id]
        wanted = max(1, rate.last, rate.current)
        tokens = self._tokens_per_request(admission)
        window, usage = self._left.get(key.id, (None, None))
        if usage is None:
            return 1
        caps = []
        if key.max_budget is not None and admission.cost > 0:
            left = key.max_budget - usage.spend - usage.reserved
            caps.append(SHARE * left / admission.cost)
        if key.rpm_limit is not None:
            used = usage.requests if window == admission.window else 0
            caps.append(SHARE * (key.rpm_limit - used))
        if key.tpm_limit is not None and tokens > 0:
            used = usage.tokens if window == admission.window else 0
            caps.append(SHARE * (key.tpm_limit - used) / tokens)
        return max(1, min(wanted, *(math.floor(cap) for cap in caps))) if caps else wanted

    def _grant(self, admission: Admission, now: float, size: int) -> Slice:
        """Count a slice of `size` requests like this one in the stores that count the key:
        the budget (and, without Redis, the rates) in SQL, the rates in Redis. Where `size`
        does not fit, one request (whose refusal, if any, names the limit)."""
        key = admission.key
        rated = has_rate_limits(key)
        sql_rates = rated and self.redis is None
        in_sql = key.max_budget is not None or sql_rates
        grant = dataclasses.replace(admission, tokens=self._tokens_per_request(admission) * size,
                                    cost=admission.cost * size, requests=size,
                                    sql_lease=self._new_lease() if in_sql else None)
        usage = Usage()
        if in_sql:
            usage = self.sql.try_admit(grant, sql_rates, now) if size > 1 else None
            if usage is None:
                grant = _one(grant, admission)
                usage = self.sql.admit(grant, sql_rates, now)
            admission.stale = grant.stale
        piece = Slice(key, grant.sql_lease, admission.window, sql_rates, grant.requests,
                      grant.tokens, grant.cost, time.monotonic(), usage)
        with self._lock:
            self._held.setdefault(key.id, set()).add(piece)
        if rated and self.redis is not None:
            self._count_in_redis(piece, grant, admission, now)
        return piece

    def _count_in_redis(self, piece: Slice, grant: Admission, admission: Admission,
                        now: float) -> None:
        """Count the slice's requests and tokens in Redis (one request where they do not
        fit); a refusal gives the slice back and raises the 429. Redis unreachable: the
        slice goes without rate limits, as a request would."""
        try:
            counted = self.redis.admit(grant, now, refuse=grant.requests == 1)
            if counted is None:
                grant = _one(grant, admission)
                counted = self.redis.admit(grant, now)
        except ProxyError:
            piece.open, piece.given_back = False, True
            self._give_back(piece)
            raise
        except Exception:
            served_without_limits(piece.key.id)
            return
        piece.redis_rates = True
        piece.requests, piece.tokens = grant.requests, grant.tokens
        piece.usage = dataclasses.replace(piece.usage, requests=counted.requests,
                                          tokens=counted.tokens)

    def _tokens_per_request(self, admission: Admission) -> int:
        """Tokens a slice holds per request: its prompt, or (tpm counts the answer's tokens
        too) what the key's requests really used of late, whichever is more."""
        rate = self._rates.get(admission.key.id)
        return max(admission.tokens, math.ceil(rate.tokens) if rate else 0)

    def _close(self, piece: Slice) -> None:
        """Stop admitting on the slice (lock held); the keeper gives it back once nothing is
        in flight."""
        if self._stop(piece):
            self._queue(piece)

    def _queue(self, piece: Slice) -> None:
        """Have the keeper give the slice back now (lock held)."""
        self._idle.append(piece)
        self._keep()
        self._wake.set()

    def _stop(self, piece: Slice) -> bool:
        """Stop admitting on the slice (lock held); True when it is to be given back now."""
        piece.open = False
        if self._open.get(piece.key.id) is piece:
            del self._open[piece.key.id]
        return self._due(piece)

    @staticmethod
    def _due(piece: Slice) -> bool:
        """True, once, for a closed slice with nothing in flight (lock held)."""
        due = not piece.open and piece.in_flight == 0 and not piece.given_back
        piece.given_back = piece.given_back or due
        return due

    def finish(self, admission: Admission, cost: float, token_delta: int) -> None:
        """A request of the slice has finished: its real cost and tokens replace its
        estimate. The last of its requests in flight, before its answer ends, gives a
        closed slice back, or adds an open one's new spend to the key's (one write; the
        slice keeps admitting): once a key's requests have all been answered, its spend in
        the store is theirs, read from any worker or instance. Closing the slice there
        instead cost a busy key a give-back and a new grant (four round trips, the key's
        other requests waiting on the grant) each time its requests in flight ran out."""
        piece = admission.allowance
        with self._lock:
            piece.in_flight -= 1
            piece.used_cost += cost - admission.cost
            piece.spent += cost
            piece.used_tokens += token_delta
            rate = self._rates.get(piece.key.id)
            if rate is not None:
                rate.used(admission.tokens + token_delta)
            due, unflushed = self._due(piece), 0.0
            if piece.open and piece.in_flight == 0:
                unflushed, piece.flushed = piece.spent - piece.flushed, piece.spent
        if due:
            self._give_back(piece)
        elif unflushed:
            self._flush(piece, unflushed)

    def release(self, admission: Admission) -> None:
        """Undo the admission of a request refused by another limit after this one (Redis); a
        slice that admitted nothing else is given back at once."""
        piece = admission.allowance
        with self._lock:
            piece.in_flight -= 1
            piece.used_requests -= 1
            piece.used_tokens -= admission.tokens
            piece.used_cost -= admission.cost
            due = self._stop(piece) if piece.used_requests == 0 else self._due(piece)
        if due:
            self._give_back(piece)

    def _keep(self) -> None:
        """Start this process's keeper (lock held), which gives back idle slices."""
        if self._keeper_pid != os.getpid():
            self._keeper_pid = os.getpid()
            threading.Thread(target=self._keep_giving_back, name="key-allowances",
                             daemon=True).start()

    def _keep_giving_back(self) -> None:
        """Every SLICE_SECONDS, and when woken, close the slices that are too old to admit
        and give back those with nothing in flight. Ends once no slice was left for
        KEEPER_IDLE_ROUNDS rounds (a key used now and then does not start one each time)."""
        idle_rounds = 0
        while True:
            self._wake.wait(SLICE_SECONDS)
            self._wake.clear()
            self.give_back_idle(time.monotonic() - SLICE_SECONDS)
            with self._lock:
                busy = self._open or self._next or self._idle
                idle_rounds = 0 if busy else idle_rounds + 1
                if idle_rounds >= KEEPER_IDLE_ROUNDS:
                    self._keeper_pid = None
                    return

    def give_back_idle(self, older_than: float) -> None:
        """Close slices granted before `older_than` and give back every idle one."""
        with self._lock:
            for pending in (self._open, self._next):
                for piece in [p for p in pending.values() if p.granted_at <= older_than]:
                    del pending[piece.key.id]
                    self._close(piece)
            idle, self._idle = self._idle, []
        for piece in idle:
            self._give_back(piece)

    def close(self) -> None:
        """Give back every slice with nothing in flight (a worker that stops)."""
        self.give_back_idle(math.inf)

    def write_back(self, piece: Slice, store_up: bool = True) -> None:
        """Give the slice back: its unused requests and tokens to Redis (when it counts
        them), then in one write to SQL its real spend, its lease and reservation freed, and
        (when SQL counts them) its unused requests and tokens. In its own window the unused
        ones are returned; once that window is over, only tokens beyond those counted are
        added to the current one. Raises when that fails (or the store is not `store_up`):
        the slice is forgotten here either way."""
        window, tokens, requests = window_of(time.time()), piece.used_tokens - piece.tokens, 0
        if piece.window == window:
            requests = piece.used_requests - piece.requests
        else:
            tokens = max(0, tokens)
        try:
            if not store_up:
                raise ConnectionError("the key store is unreachable")
            if piece.redis_rates:
                self.redis.give_back(piece.key.id, window, requests, tokens)
            if not piece.sql_rates:
                window, tokens, requests = None, 0, 0
            self._settle(Settle(piece.key.id, piece.lease, piece.spent - piece.flushed, window,
                                tokens, requests))
        finally:
            with self._lock:
                held = self._held.get(piece.key.id)
                held.discard(piece)
                if not held:
                    del self._held[piece.key.id]
