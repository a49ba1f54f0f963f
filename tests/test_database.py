"""The SQL layer on both engines: migrations once, transactions, many processes at once."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from app.storage.database import Database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)",
         ["CREATE INDEX things_name ON things (name)", "ALTER TABLE things ADD COLUMN note TEXT"]]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_apply_once(database_url):
    db = Database(database_url)
    db.migrate("things", STEPS)
    db.migrate("things", STEPS)  # a second start applies nothing again
    db.execute("INSERT INTO things (id, name, n, note) VALUES (?, ?, ?, ?)", (1, "a", 2, "x"))
    assert db.query("SELECT name, n, note FROM things") == [("a", 2, "x")]
    assert db.query("SELECT version FROM schema_migrations WHERE owner = ? ORDER BY version",
                    ("things",)) == [(1,), (2,)]


def test_transaction_rolls_back(database_url):
    db = Database(database_url)
    db.migrate("things", STEPS)
    with pytest.raises(RuntimeError):
        with db.transaction() as tx:
            tx.execute("INSERT INTO things (id, name) VALUES (?, ?)", (1, "gone"))
            raise RuntimeError("abort")
    assert db.query("SELECT COUNT(*) FROM things") == [(0,)]


def test_parameters_are_never_sql(database_url):
    db = Database(database_url)
    db.migrate("things", STEPS)
    hostile = "x'); DROP TABLE things; --"
    db.execute("INSERT INTO things (id, name) VALUES (?, ?)", (1, hostile))
    assert db.query("SELECT name FROM things WHERE name = ?", (hostile,)) == [(hostile,)]


def _insert_many(url: str, start: int) -> None:
    db = Database(url)
    for i in range(start, start + 50):
        with db.transaction() as tx:
            tx.execute("INSERT INTO things (id, name, n) VALUES (?, ?, ?)", (i, f"p{start}", i))


def test_many_processes_write_at_once(database_url):
    db = Database(database_url)
    db.migrate("things", STEPS)
    # spawn, not fork: forking a test process whose other threads may hold a lock can hang
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_insert_many, args=(database_url, k * 1000))
               for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert db.query("SELECT COUNT(*), COUNT(DISTINCT name) FROM things") == [(200, 4)]


GEVENT_LOCK_WAIT = r"""
import sqlite3, sys, time
from gevent import monkey
monkey.patch_all()
import gevent
from app.storage.database import Database

path = sys.argv[1]
db = Database(f"sqlite:///{path}", timeout=3)
db.migrate("things", [sys.argv[2]])
holder = sqlite3.connect(path, isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # another writer holds SQLite's write lock

def release_later():
    gevent.sleep(0.3)
    holder.execute("COMMIT")

def write():
    started = time.monotonic()
    with db.transaction() as tx:
        tx.execute("INSERT INTO things (id, name) VALUES (1, 'waited')")
    return time.monotonic() - started

releaser = gevent.spawn(release_later)
writer = gevent.spawn(write)
gevent.joinall([releaser, writer], timeout=10)
print("waited", writer.value if writer.successful() else repr(writer.exception))
"""


def test_sqlite_lock_wait_lets_the_gevent_worker_run(tmp_path):
    """A transaction waiting for another writer's lock sleeps cooperatively: the greenlet
    that will release the lock (any other request of the worker) still runs. SQLite's own
    busy wait, in C, froze the whole worker until its timeout."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", GEVENT_LOCK_WAIT, str(tmp_path / "t.db"), STEPS[0]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    waited = out.stdout.split("waited ", 1)[1].strip()
    assert 0.25 <= float(waited) < 2, waited


def test_a_migration_waits_out_a_lock_held_past_the_bound(postgres_url):
    """A migration runs once, at start, off any request: neither the server's timeouts nor
    the client side's bound cut it short while another session holds the migrations lock."""
    import threading

    import psycopg
    Database(postgres_url).migrate("things", STEPS[:1])
    holder = psycopg.connect(postgres_url)
    holder.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
    release = threading.Timer(1.0, holder.rollback)
    release.start()
    try:
        Database(postgres_url, timeout=0.3).migrate("things", STEPS)
    finally:
        release.join()
        holder.close()
    assert Database(postgres_url).query("SELECT note FROM things") == []


# Under gevent: request greenlets read while a NativeThread call (the ledger's writer) reads
# too, each taking a connection from the process's pool and giving it back under the pool's
# lock. Every greenlet must get through; prints how many finished.
POOL_CONTENDED = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
from app.offload import NativeThread
from app.storage.database import Database
db, native = Database(sys.argv[1]), NativeThread()
stop = time.monotonic() + 2

def request():
    while time.monotonic() < stop:
        db.query("SELECT 1")
        gevent.sleep(0)

def writer():  # on the native thread: the pool's lock taken again and again
    while time.monotonic() < stop:
        db.query("SELECT 1")

workers = [gevent.spawn(request) for _ in range(16)] + [gevent.spawn(native.call, writer)]
print(len(gevent.joinall(workers, timeout=8)), "of", len(workers), flush=True)
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_greenlets_and_a_native_thread_share_the_connection_pool(engine, tmp_path, request):
    """gevent's patched Lock, released on a native thread, can leave greenlets waiting on it
    for good (see tests/test_ledger_journal.py): the pools' locks are OS locks."""
    url = f"sqlite:///{tmp_path / 'pool.db'}" if engine == "sqlite" \
        else request.getfixturevalue("postgres_url")
    done = subprocess.run([sys.executable, "-c", POOL_CONTENDED, url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "17 of 17", done.stdout + done.stderr


# Under gevent: request greenlets wait their turn while a NativeThread call (the ledger's
# writer) holds it too: SQLite's one writer per process, PostgreSQL's pool of connections (more
# greenlets than it has). Every greenlet must get through long before the store's timeout;
# prints how many finished and how many statements failed.
TURNS_CONTENDED = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
from app.offload import NativeThread
from app.storage.database import POOL_SIZE, Database
db, native = Database(sys.argv[1], timeout=30), NativeThread()
db.execute("CREATE TABLE IF NOT EXISTS turns (n INTEGER)")
stop, failed = time.monotonic() + 2, []

def statement():
    try:
        if db.dialect == "sqlite":
            db.execute("INSERT INTO turns (n) VALUES (1)")
        else:
            db.query("SELECT pg_sleep(0.002)")
    except Exception as exc:
        failed.append(exc)

def request():
    while time.monotonic() < stop:
        statement()
        gevent.sleep(0)

def writer():  # on the native thread
    while time.monotonic() < stop:
        statement()

workers = [gevent.spawn(request) for _ in range(POOL_SIZE + 8)] + [gevent.spawn(native.call, writer)]
print(len(gevent.joinall(workers, timeout=8)), "of", len(workers), "failed", len(failed), flush=True)
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_greenlets_and_a_native_thread_take_turns(engine, tmp_path, request):
    """gevent's lock, released on a native thread, left the greenlets queued for SQLite's writer
    asleep until the store's timeout (1 of 25 through, the rest failing 'database is locked'):
    the writer's turn and the pool's connections (whose semaphore did not show it here) are
    SharedSemaphores (app/offload.py), whose greenlets and native thread wait differently."""
    url = f"sqlite:///{tmp_path / 'turns.db'}" if engine == "sqlite" \
        else request.getfixturevalue("postgres_url")
    done = subprocess.run([sys.executable, "-c", TURNS_CONTENDED, url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "25 of 25 failed 0", done.stdout + done.stderr
