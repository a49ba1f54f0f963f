"""One small SQL layer over SQLite (embedded default) and PostgreSQL (`DATABASE_URL`).

Statements are written once with `?` placeholders and run on either engine; every value
is a bound parameter, never text pasted into SQL. Each feature owns its tables and
declares them as numbered migrations, applied once by whichever process starts first.
"""
from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from app.offload import SharedSemaphore, shared_lock
from app.storage.deadline import bounded
from app.storage.postgres_pool import PostgresPool

DEFAULT_TIMEOUT_SECONDS = 30.0
POOL_SIZE = 16
T = TypeVar("T")
SQLITE_IDLE = 4       # SQLite connections a process keeps open for its next statements
LOCK_POLL_SECONDS = (0.0002, 0.005)  # first and longest pause between tries for the write lock


class Database:
    """Connections are made lazily and per process, so one Database built before gunicorn
    forks its workers is safe to use in each of them.

    `timeout` bounds every wait on the database (the caller's own deadline too, when sooner:
    app/storage/deadline.py): waiting for SQLite's locks, PostgreSQL's statement_timeout and
    lock_timeout, connecting, waiting for a free connection, and for each answer. A
    connection that fails is dropped, and the next use connects anew: a database that comes
    back is used again at once, never left broken until restart."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 counters: bool = False):
        """`counters`: for a few hot rows written many times a second. On PostgreSQL a
        commit then returns before its WAL reaches the disk (synchronous_commit off: a server
        crash may lose the last moments of commits, never corrupt them), as SQLite's WAL mode
        with synchronous=NORMAL always does here."""
        self.url = url
        self.timeout = timeout
        self.counters = counters
        self.dialect = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._idle: list[sqlite3.Connection] = []   # SQLite connections not in use
        self._idle_pid = os.getpid()
        self._inherited: list[sqlite3.Connection] = []
        self._migrate_lock = threading.Lock()
        self._pool_lock = shared_lock()   # request greenlets and the ledger's native thread
        self._writer = SharedSemaphore(1)   # held across SQLite's lock waits, on both sides
        self._pools: dict[int, PostgresPool] = {}
        if self.dialect == "sqlite":
            self.path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            with self._sqlite() as connection:
                self._patiently(lambda: connection.execute("PRAGMA journal_mode=WAL"))

    @property
    def _pool(self) -> "PostgresPool":
        pool = self._pools.get(os.getpid())
        if pool is None:
            with self._pool_lock:
                pool = self._pools.get(os.getpid())
                if pool is None:
                    pool = PostgresPool(self.url, POOL_SIZE, self.timeout, self.counters)
                    self._pools = {os.getpid(): pool}
        return pool

    @contextmanager
    def _sqlite(self) -> Iterator[sqlite3.Connection]:
        """A connection of this process's own, for one statement or transaction; WAL lets
        every worker read while one writes. Connections are kept for the next use, never per
        thread: under gevent a "thread" is a request's greenlet, and a connection per request
        made every keyed request open one (and parse the schema) anew. An SQLite error other
        than a constraint drops the connection: one that opened while the folder was
        read-only, say, stays read-only for good."""
        with self._pool_lock:
            if self._idle_pid != os.getpid():
                # A forked child neither uses nor closes its parent's connections (closing
                # one could touch the parent's locks): they stay referenced, unused.
                self._inherited, self._idle, self._idle_pid = self._idle, [], os.getpid()
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=self.timeout,
                                         isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout = 0")  # waits: _patiently
        try:
            yield connection
        except sqlite3.OperationalError:
            with suppress(sqlite3.Error):
                connection.close()
            raise
        except BaseException:
            self._give_back(connection)
            raise
        self._give_back(connection)

    def _give_back(self, connection: sqlite3.Connection) -> None:
        with self._pool_lock:
            if connection.in_transaction or len(self._idle) >= SQLITE_IDLE \
                    or self._idle_pid != os.getpid():
                keep = False
            else:
                self._idle.append(connection)
                keep = True
        if not keep:
            with suppress(sqlite3.Error):
                connection.close()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.dialect == "postgresql" else statement

    @contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        """Statements inside commit together, or not at all."""
        if self.dialect == "postgresql":
            with self._pool.connection() as connection:
                with connection.transaction():
                    yield Transaction(self, connection.cursor())
            return
        with self._one_writer(), self._sqlite() as connection:
            self._begin_immediate(connection)
            try:
                yield Transaction(self, connection.cursor())
            except BaseException:
                with suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        """One SQLite write transaction at a time in this process: its other writers queue
        here in turn, rather than each polling SQLite's lock, which under load let some
        requests lose to the other workers for seconds."""
        if not self._writer.acquire(timeout=bounded(self.timeout)):
            raise sqlite3.OperationalError("database is locked (this process's writers queue)")
        try:
            yield
        finally:
            self._writer.release()

    def _begin_immediate(self, connection: sqlite3.Connection) -> None:
        """Take SQLite's write lock, waiting while another connection holds it."""
        self._patiently(lambda: connection.execute("BEGIN IMMEDIATE"))

    def _patiently(self, attempt: Callable[[], T]) -> T:
        """`attempt()`, tried again with time.sleep while it finds the database locked.
        SQLite's own busy wait (off: busy_timeout 0 on every connection) sleeps in C: under
        gevent that froze every request of the worker (and the greenlet that would have
        released the lock) for 1-100 ms at each try, the tail of keyed requests, whose
        limits are counted in a write per request. time.sleep yields to the worker's other
        greenlets (or, with threads, the GIL)."""
        deadline = time.monotonic() + bounded(self.timeout)
        pause = LOCK_POLL_SECONDS[0]
        while True:
            try:
                return attempt()
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_SECONDS[1])

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read-only statement."""
        if self.dialect == "postgresql":
            return self._pool.read(self._sql(statement), params)
        with self._sqlite() as connection:
            return self._patiently(lambda: connection.execute(statement, params).fetchall())

    def run(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        """One statement that may write (`... RETURNING`), in its own transaction; its rows.
        On PostgreSQL a single round trip."""
        if self.dialect == "postgresql":
            return self._pool.run(self._sql(statement), params)[1]
        with self.transaction() as tx:
            return tx.fetch(statement, params)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; the number of rows it touched."""
        if self.dialect == "postgresql":
            return self._pool.run(self._sql(statement), params)[0]
        with self.transaction() as tx:
            return tx.execute(statement, params)

    def migrate(self, owner: str, steps: Sequence[str | Iterable[str]]) -> None:
        """Apply `owner`'s schema steps not applied yet (step i is version i + 1)."""
        with self._migrate_lock:
            self.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "owner TEXT NOT NULL, version INTEGER NOT NULL, "
                         "PRIMARY KEY (owner, version))")
            with self.transaction() as tx:
                if self.dialect == "postgresql":  # one migrator at a time across processes
                    # a migration may take its time; it runs once, at start, off any request
                    tx.execute("SET LOCAL statement_timeout = 0")
                    tx.execute("SET LOCAL lock_timeout = 0")
                    tx.wait_as_long_as_it_takes()
                    tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                done = {row[0] for row in tx.fetch(
                    "SELECT version FROM schema_migrations WHERE owner = ?", (owner,))}
                for version, step in enumerate(steps, start=1):
                    if version in done:
                        continue
                    for statement in ([step] if isinstance(step, str) else step):
                        tx.execute(statement)
                    tx.execute("INSERT INTO schema_migrations (owner, version) VALUES (?, ?)",
                               (owner, version))

    def close(self) -> None:
        if self.dialect == "postgresql":
            for pool in self._pools.values():
                pool.close()
            self._pools = {}
        else:
            with self._pool_lock:
                idle, self._idle = self._idle, []
            for connection in idle:
                with suppress(sqlite3.Error):
                    connection.close()


class Transaction:
    def __init__(self, database: Database, cursor):
        self._database = database
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._database._sql(statement), params)
        return self._cursor.rowcount

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self._database._sql(statement), list(rows))

    def fetch(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._cursor.execute(self._database._sql(statement), params)
        return self._cursor.fetchall()

    def wait_as_long_as_it_takes(self) -> None:
        """PostgreSQL: lift the client side's bound on this transaction's waits (a migration,
        run once at start, off any request; the server's own are lifted with SET LOCAL)."""
        self._cursor.connection.deadline = math.inf


def database_url(env: dict, data_dir: str) -> str:
    """DATABASE_URL when set, else an SQLite file in the data directory."""
    return env.get("DATABASE_URL") or f"sqlite:///{Path(data_dir) / 'switchboard.db'}"
