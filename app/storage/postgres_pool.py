"""A small per-process pool of PostgreSQL connections that never keeps a broken one.

A failed connection is dropped, with every idle one beside it (a restarted server has cut
them all), and the next use connects anew: there is no background reconnect schedule to wait
out, so the first request after the database returns is served. Every wait is bounded by the
pool's timeout: for a free connection, for connecting, and (server side) for each statement
(`statement_timeout`) and each lock (`lock_timeout`).
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager, suppress
from typing import Any, Iterator, Sequence

import psycopg
from psycopg import pq

LIBPQ_MIN_CONNECT_TIMEOUT = 2   # libpq reads anything lower as 2 s


class _DeadReusedConnection(psycopg.OperationalError):
    """An idle connection the server has cut since: worth one more try on a new one."""


class PostgresPool:
    def __init__(self, url: str, size: int, timeout: float):
        self.url = url
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection] = []
        milliseconds = max(1, int(timeout * 1000))
        self._options = {
            "autocommit": False,
            "connect_timeout": max(LIBPQ_MIN_CONNECT_TIMEOUT, math.ceil(timeout)),
            "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
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
            except psycopg.OperationalError as exc:
                if retry and reused and (connection.closed or connection.broken):
                    raise _DeadReusedConnection() from exc
                raise
            connection.commit()
            return rows

    @contextmanager
    def _checkout(self) -> Iterator[tuple[psycopg.Connection, bool]]:
        if not self._slots.acquire(timeout=self.timeout):
            raise psycopg.OperationalError(
                f"no database connection became free within {self.timeout:g} s")
        try:
            connection, reused = self._take()
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
        return psycopg.connect(self.url, **self._options), False

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
