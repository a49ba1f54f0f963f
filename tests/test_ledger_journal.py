"""The ledger's journal: rows of a killed process are replayed once by the next process, a
journal is deleted once its rows are stored, and a broken SQLite connection is not kept."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from app.config import load_settings
from app.service.completion import CompletionService
from app.storage.database import Database
from app.usage.journal import Journal
from app.usage.ledger import JOURNAL_DIR, Ledger, ledger_of
from tests.test_ledger import ROOT, ledger_env, make_event  # noqa: F401  (fixture)

KILLED_WRITER = """
import sys, time
from app.config import load_settings
from app.service.completion import CompletionService
from app.usage.ledger import ledger_of
from tests.test_ledger import make_event
ledger = ledger_of(CompletionService(load_settings()))
for request_id in sys.argv[1:]:
    ledger.handle(make_event(request_id=request_id))
ledger.writer.flush(10)   # the first rows reach the database
for request_id in sys.argv[1:]:
    ledger.handle(make_event(request_id=request_id + "-late"))
print("journaled", flush=True)
time.sleep(600)
"""


def request_ids(database: Database) -> list[str]:
    return sorted(row[0] for row in database.query("SELECT request_id FROM ledger"))


def test_rows_of_a_killed_process_are_replayed_once(ledger_env, write_config):  # noqa: F811
    # Rows wait in memory (60 s interval) when the process is killed: only the journal has
    # the late ones; the first ten are in the database and in the journal both.
    env = {**os.environ, **ledger_env,
           "SWITCHBOARD_CONFIG": write_config("ledger: {flush_interval: 60}")}
    ids = [uuid.uuid4().hex for _ in range(10)]
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, *ids], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"journaled\n"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    journal_dir = os.path.join(ledger_env["SWITCHBOARD_DATA_DIR"], JOURNAL_DIR)
    assert os.listdir(journal_dir)

    ledger = ledger_of(CompletionService(load_settings(ledger_env)))  # a new start replays
    expected = sorted(ids + [i + "-late" for i in ids])
    assert request_ids(ledger.database) == expected
    assert os.listdir(journal_dir) == []
    assert ledger.replay() == 0                          # nothing twice
    assert request_ids(ledger.database) == expected


def test_a_live_process_keeps_its_journal_and_deletes_it_once_stored(ledger_env):  # noqa: F811
    settings = load_settings(ledger_env)
    ledger = ledger_of(CompletionService(settings))
    for _ in range(5):
        ledger.handle(make_event())
    journal_dir = os.path.join(settings.data_dir, JOURNAL_DIR)
    assert len(os.listdir(journal_dir)) == 1
    assert ledger.replay() == 0                  # locked by its live writer: not an orphan
    assert ledger.flush(10)
    assert os.listdir(journal_dir) == []
    assert len(request_ids(ledger.database)) == 5


def test_a_torn_last_line_is_skipped(tmp_path):
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / "1-dead.journal").write_bytes(b'{"id": "a", "request_id": "r1"}\n{"id": "b", "req')
    stored = []
    assert Journal(folder).replay(stored.extend) == 1
    assert stored == [{"id": "a", "request_id": "r1"}]
    assert list(folder.iterdir()) == []


def test_sqlite_reconnects_after_its_file_was_read_only(tmp_path):
    """A connection that opened while the file was read-only must not stay read-only. As
    root, the child drops the capability that ignores file permissions."""
    script = """
import os, sqlite3, sys
from app.storage.database import Database
folder = sys.argv[1]
db = Database(f"sqlite:///{folder}/x.db")
db.execute("CREATE TABLE t (n INTEGER)")
db.close()
for name in os.listdir(folder):
    os.chmod(os.path.join(folder, name), 0o444)
try:
    db.execute("INSERT INTO t VALUES (1)")
    print("written while read-only")
except sqlite3.Error:
    pass
for name in os.listdir(folder):
    os.chmod(os.path.join(folder, name), 0o644)
db.execute("INSERT INTO t VALUES (2)")
print(db.query("SELECT n FROM t"))
"""
    prefix = (["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
              if os.geteuid() == 0 else [])
    done = subprocess.run([*prefix, sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(2,)]"


def test_a_full_queue_spills_to_the_journal_instead_of_waiting(ledger_env):  # noqa: F811
    """A database away long enough to fill the memory queue: requests stop waiting for it,
    their rows stay in the journal and are stored once it is back, once each."""
    service = CompletionService(load_settings(ledger_env))
    full = ledger_of(service)
    ledger = Ledger(full.database, flush_interval=0.01, queue_size=3, journal=full.journal)
    ledger.database.execute("ALTER TABLE ledger RENAME TO ledger_away")
    events = [make_event() for _ in range(40)]
    started = time.monotonic()
    for event in events:
        ledger.handle(event)
    assert time.monotonic() - started < 1.0           # nobody waited for the database
    assert not ledger.flush(0.3)
    ledger.database.execute("ALTER TABLE ledger_away RENAME TO ledger")
    assert ledger.flush(15)
    ledger.replay()
    assert request_ids(ledger.database) == sorted(event.request_id for event in events)
    assert os.listdir(os.path.join(ledger_env["SWITCHBOARD_DATA_DIR"], JOURNAL_DIR)) == []


# Under gevent: request greenlets append rows while the ledger writer's native thread marks
# rows stored (app/offload.py), taking the journal's lock again and again. Every greenlet must
# get through, none left waiting on the lock for good; prints how many finished.
CONTENDED = """
from gevent import monkey; monkey.patch_all()
import sys, time, gevent
from app.offload import NativeThread
from app.usage.journal import Journal
journal, native, pending = Journal(sys.argv[1]), NativeThread(), []
stop = time.monotonic() + 2

def request():
    while time.monotonic() < stop:
        pending.append(journal.append({"id": "row"}))
        gevent.sleep(0)

def batches():  # on the native thread: the journal's lock taken again and again
    while time.monotonic() < stop or pending:
        batch = pending[:]
        del pending[:len(batch)]
        journal.stored(batch)

workers = [gevent.spawn(request) for _ in range(16)] + [gevent.spawn(native.call, batches)]
print(len(gevent.joinall(workers, timeout=8)), "of", len(workers), flush=True)
"""


def test_greenlets_and_the_native_writer_share_the_journal_without_hanging(tmp_path):
    """gevent's patched Lock, released on the writer's native thread, left greenlets waiting
    on it for good: requests behind the journal's lock were never answered."""
    done = subprocess.run([sys.executable, "-c", CONTENDED, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "17 of 17", done.stdout + done.stderr
