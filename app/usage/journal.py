"""The ledger's local journal: the first place a ledger row goes.

Each row is appended to a file under the data directory on the request path, with one
write(2) before the answer's last byte leaves, so it survives its worker being killed, the
database being down and the proxy being restarted. The ledger's writer fsyncs the journal
once per batch (not once per row), stores the batch in the database, then tells the journal,
which deletes a file as soon as every row in it is stored.

Each process appends to its own files (`<pid>-<random>.journal`) and holds them locked
(flock). A file nobody holds a lock on belongs to a process that is gone (a killed worker, a
killed instance): any process of the proxy replays it into the database, then deletes it.
Rows carry their own id and inserts skip ids already stored, so a row written to the
database just before its process died is not counted twice.

When the ledger's memory queue is full (the database has been away for a while), a row
that is in the journal stays there only ("spilled"), so the request does not wait for the
database; once the database takes rows again the file is read back and stored whole.

When the folder cannot be written (read-only for a moment, a full disk), a row is kept in
memory only, as before the journal existed, and appends try the disk again a second later.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from app.offload import shared_lock

log = logging.getLogger("switchboard.journal")

SUFFIX = ".journal"
RETRY_SECONDS = 1.0           # after a failed append, the disk is tried again this much later
REPLAY_BATCH = 500


class Segment:
    """One open journal file and the number of its rows not yet in the database."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self.unwritten = 0          # rows also held in memory, not in the database yet
        self.spilled = 0            # rows held only here (the memory queue was full)
        self.dirty = False


class Journal:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._lock = shared_lock()   # the ledger writer's native thread takes it too
        self._current: Segment | None = None
        self._pid = os.getpid()
        self._retry_at = 0.0
        self._spilling: set[Segment] = set()

    def append(self, row: dict) -> Segment | None:
        """Put one row in this process's journal; the segment that holds it, or None when the
        disk refused it (the row then lives in memory only)."""
        line = orjson.dumps(row, default=str) + b"\n"
        with self._lock:
            segment = self._segment()
            if segment is None:
                return None
            try:
                if os.write(segment.fd, line) != len(line):
                    raise OSError("short write (disk full?)")
            except OSError as exc:
                self._abandon(exc)
                return None
            segment.unwritten += 1
            segment.dirty = True
            return segment

    def spill(self, segment: Segment) -> None:
        """The row just appended to `segment` stays on disk only: `replay_spilled` stores it."""
        with self._lock:
            segment.unwritten -= 1
            segment.spilled += 1
            self._spilling.add(segment)

    def replay_spilled(self, store: Callable[[list[dict]], None]) -> int:
        """Store this process's files that hold spilled rows, once their other rows are
        stored: the whole file (rows stored already are skipped by their id), then delete it."""
        with self._lock:
            ready = [segment for segment in self._spilling if segment.unwritten == 0]
            for segment in ready:
                self._spilling.discard(segment)
                if segment is self._current:
                    self._current = None     # no more appends: the file is read whole
        replayed = 0
        for segment in ready:
            try:
                with open(segment.path, "rb") as file:
                    _store_rows(file, store)
            except Exception as exc:
                log.warning("journal: storing the spilled rows of %s failed (%s: %s); trying "
                            "again later", segment.path.name, type(exc).__name__, exc)
                with self._lock:
                    self._spilling.add(segment)
                continue
            _remove(segment.path)
            os.close(segment.fd)
            replayed += segment.spilled
        return replayed

    def sync(self) -> None:
        """fsync what was appended since the last sync (the writer calls this per batch)."""
        segment = self._current
        if segment is not None and segment.dirty:
            segment.dirty = False
            try:
                os.fdatasync(segment.fd)
            except OSError as exc:
                log.warning("journal: fsync failed (%s)", exc)

    def stored(self, segments: Iterable[Segment | None]) -> None:
        """These rows are in the database now; files left with none unwritten are deleted."""
        done = []
        with self._lock:
            for segment in segments:
                if segment is None:
                    continue
                segment.unwritten -= 1
                if segment.unwritten == 0 and not segment.spilled:
                    done.append(segment)
                    if segment is self._current:
                        self._current = None
            for segment in dict.fromkeys(done):
                _remove(segment.path)
                os.close(segment.fd)

    def replay(self, store: Callable[[list[dict]], None]) -> int:
        """Store the rows of every journal whose process is gone, then delete it; the number of
        rows replayed. A file that fails to store stays for the next replay."""
        replayed = 0
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                replayed += self._replay_file(path, store)
            except Exception as exc:
                log.warning("journal: replaying %s failed (%s: %s); trying again later",
                            path.name, type(exc).__name__, exc)
        return replayed

    def _replay_file(self, path: Path, store: Callable[[list[dict]], None]) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return 0        # another process replayed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0    # its process is alive and drains it itself
            if os.fstat(fd).st_nlink == 0:
                return 0    # drained and deleted while we waited to open it
            with os.fdopen(os.dup(fd), "rb") as file:
                count = _store_rows(file, store)
            _remove(path)
            if count:
                log.warning("journal: replayed %d ledger rows of a stopped process (%s)",
                            count, path.name)
            return count
        finally:
            os.close(fd)

    def _segment(self) -> Segment | None:
        if self._pid != os.getpid():  # a forked child: the parent's files stay the parent's
            self._pid, self._current, self._retry_at = os.getpid(), None, 0.0
        if self._current is not None:
            return self._current
        if time.monotonic() < self._retry_at:
            return None
        path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._abandon(exc)
            return None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        self._current = Segment(path, fd)
        return self._current

    def _abandon(self, exc: OSError) -> None:
        """Stop appending to the current file (a torn line must stay the last one in it)."""
        if self._retry_at <= time.monotonic():
            log.error("journal: cannot write to %s (%s); ledger rows are held in memory until "
                      "it can", self.folder, exc)
        segment, self._current = self._current, None
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if segment is not None and segment.unwritten == 0 and not segment.spilled:
            _remove(segment.path)
            os.close(segment.fd)


def _store_rows(file, store: Callable[[list[dict]], None]) -> int:
    """Store every row of a journal file, in batches; how many there were."""
    rows = list(_rows(file))
    for start in range(0, len(rows), REPLAY_BATCH):
        store(rows[start:start + REPLAY_BATCH])
    return len(rows)


def _rows(file) -> Iterator[dict]:
    """The rows of a journal file; a torn last line (its process died mid-write) is skipped."""
    for line in file:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict):
            yield row


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("journal: cannot delete %s yet (%s)", path.name, exc)
