"""A small per-process pool of PostgreSQL connections that never keeps a broken one.

A failed connection is dropped, with every idle one beside it (a restarted server has cut
them all), and the next use connects anew: there is no background reconnect schedule to wait
out, so the first request after the database returns is served. Every wait is bounded by the
pool's timeout (or the request's own, when sooner: app/storage/deadline.py): for a free
connection, for connecting, for each statement and lock on the server (`statement_timeout`,
`lock_timeout`), and on the client for every answer (`BoundedConnection`), since a frozen
server (SIGSTOP, a stalled VM) fires none of its own timeouts while its kernel keeps ACKing.

Connections are in autocommit mode: a single statement is one round trip (psycopg would
otherwise send BEGIN and COMMIT around it), and `connection.transaction()` still opens a
real transaction where several statements must commit together.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager, suppress
from typing import Any, Iterator, Sequence

import psycopg
from psycopg import pq

from app.offload import SharedSemaphore, shared_lock
from app.storage.deadline import bounded

LIBPQ_MIN_CONNECT_TIMEOUT = 2   # libpq reads anything lower as 2 s
POLL_SECONDS = 0.1              # psycopg's own interval between looks at the socket
# Connections that write a few hot rows many times a second (Database(counters=True)): a
# commit does not wait for the disk.
COUNTER_OPTIONS = " -c synchronous_commit=off"


class BoundedConnection(psycopg.Connection):
    """A connection that gives up on the server at `deadline` (time.monotonic()), set at each
    checkout. Every statement, commit and rollback waits in `wait`, which psycopg bounds when
    given a timeout; a wait cut short leaves the connection mid-protocol, so it is closed."""

    deadline: float = math.inf

    def wait(self, gen, interval: float = POLL_SECONDS, timeout: float | None = None):
        left = max(0.0, self.deadline - time.monotonic())
        try:
            return super().wait(gen, interval, left if timeout is None else min(timeout, left))
        except psycopg.OperationalError:
            if time.monotonic() < self.deadline:
                raise
            self.close()
            raise StoreTimeout("the database did not answer within the wait's bound") from None


class StoreTimeout(psycopg.OperationalError):
    """The database did not answer in time (frozen, or held by a lock past the bound)."""


class _DeadReusedConnection(psycopg.OperationalError):
    """An idle connection the server has cut since: worth one more try on a new one."""


class PostgresPool:
    def __init__(self, url: str, size: int, timeout: float, counters: bool = False):
        self.url = url
        self.timeout = timeout
        self._slots = SharedSemaphore(size)   # request greenlets and the ledger's native thread
        self._lock = shared_lock()   # taken by request greenlets and the ledger's native thread
        self._idle: list[psycopg.Connection] = []
        milliseconds = max(1, int(timeout * 1000))
        self._options = {
            "autocommit": True,
            "connect_timeout": max(LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(timeout)),
            "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}"
                       + (COUNTER_OPTIONS if counters else ""),
        }

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._checkout() as (connection, _reused):
            yield connection

    def read(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        """Rows of one read-only statement. A reused connection that turns out dead (the server
        restarted since it was last used) is retried once on a new one."""
        try:
            return self._read_once(statement, params, retry=True)
        except _DeadReusedConnection:
            return self._read_once(statement, params, retry=False)

    def _read_once(self, statement: str, params: Sequence[Any], retry: bool) -> list[tuple]:
        with self._checkout() as (connection, reused):
            try:
                rows = connection.execute(statement, params).fetchall()
            except StoreTimeout:
                raise   # the wait's whole bound is spent: no second try
            except psycopg.OperationalError as exc:
                if retry and reused and (connection.closed or connection.broken):
                    raise _DeadReusedConnection() from exc
                raise
            return rows

    def run(self, statement: str, params: Sequence[Any]) -> tuple[int, list[tuple]]:
        """(rows touched, rows returned) of one statement that may write: its own transaction,
        one round trip. Never retried: a statement the server may have run is not sent twice."""
        with self._checkout() as (connection, _reused):
            cursor = connection.execute(statement, params)
            return cursor.rowcount, cursor.fetchall() if cursor.description else []

    @contextmanager
    def _checkout(self) -> Iterator[tuple[psycopg.Connection, bool]]:
        bound = bounded(self.timeout)
        deadline = time.monotonic() + bound
        if not self._slots.acquire(timeout=bound):
            raise StoreTimeout(f"no database connection became free within {bound:g} s")
        try:
            connection, reused = self._take()
            connection.deadline = deadline
            try:
                yield connection, reused
            except BaseException as exc:
                self._after_error(connection, exc)
                raise
            self._give_back(connection)
        finally:
            self._slots.release()

    def _take(self) -> tuple[psycopg.Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return BoundedConnection.connect(self.url, **self._options), False

    def _give_back(self, connection: psycopg.Connection) -> None:
        if connection.closed or connection.broken:
            return
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            try:
                connection.rollback()
            except psycopg.Error:
                self._close(connection)
                return
        with self._lock:
            self._idle.append(connection)

    def _after_error(self, connection: psycopg.Connection, exc: BaseException) -> None:
        if isinstance(exc, psycopg.OperationalError) and (connection.closed or connection.broken):
            self._close(connection)
            self._drop_idle()
        else:
            self._give_back(connection)

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            self._close(connection)

    @staticmethod
    def _close(connection: psycopg.Connection) -> None:
        with suppress(Exception):
            connection.close()

    def close(self) -> None:
        self._drop_idle()
