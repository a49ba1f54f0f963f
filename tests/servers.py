"""Real Redis and PostgreSQL servers for the tests, started on loopback and free ports.

.ci/run (and `make test`, as root) install redis-server and PostgreSQL from Debian's
packages; where a binary is missing the tests that need it are skipped with the reason.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest


HANDED_OUT_PORTS = "SWITCHBOARD_TEST_PORTS"  # the folder of the ports free_port handed out


def free_port() -> int:
    """A free loopback port that no other call in this test run (any xdist worker) returned.
    The kernel may hand the same free port to two workers before either server binds it, and
    gunicorn binds with SO_REUSEPORT: both would start, and split each other's connections."""
    handed_out = Path(os.environ[HANDED_OUT_PORTS])  # a file a port (tests/conftest.py)
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            os.close(os.open(handed_out / str(port), os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            continue
        return port


def _wait_port(port: int, process: subprocess.Popen, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {limit} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis(workdir: Path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, process, "redis-server")
    return process, f"redis://127.0.0.1:{port}/0"


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def start_postgres():
    """A throwaway cluster in its own folder under /tmp (pytest's folders are private to
    root, and PostgreSQL runs as its own user when the tests run as root)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    data, sockets = workdir / "pgdata", workdir / "pgsock"
    sockets.mkdir(parents=True, exist_ok=True)
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (workdir, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(run_as + [initdb, "-D", str(data), "-A", "trust", "-U", "switchboard",
                             "--no-sync"], check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    process = run_postgres(workdir, port)
    return process, f"postgresql://switchboard@127.0.0.1:{port}", workdir


def run_postgres(workdir: Path, port: int) -> subprocess.Popen:
    """PostgreSQL on the cluster in `workdir` (made by start_postgres), once it accepts
    sessions; also how a test restarts a server it stopped, on the same port."""
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    binary = os.path.realpath(_postgres_bin("postgres"))
    # The server's own statement counts, where its contrib module is installed (Debian's
    # postgresql package has it): what tests/test_keys_round_trips.py reads.
    statistics = Path(binary).parent.parent / "lib" / "pg_stat_statements.so"
    preload = ["-c", "shared_preload_libraries=pg_stat_statements"] if statistics.exists() else []
    process = subprocess.Popen(
        run_as + [binary, "-D", str(workdir / "pgdata"), "-p", str(port),
                  "-k", str(workdir / "pgsock"), "-c", "listen_addresses=127.0.0.1",
                  "-c", "fsync=off", "-c", "max_connections=200", *preload],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, process, "postgres")
    _wait_accepting(f"postgresql://switchboard@127.0.0.1:{port}", process)
    return process


def postmaster_pid(workdir: Path) -> int:
    """The PostgreSQL server's own process (under root, `runuser` is the process started)."""
    return int((workdir / "pgdata" / "postmaster.pid").read_text().split()[0])


def stop_postgres(process: subprocess.Popen, workdir: Path) -> None:
    """Fast shutdown (SIGINT to the postmaster): sessions still open are cut at once. A
    SIGTERM to `runuser` asks for a smart shutdown, which waits for every client to leave
    until runuser gives up and kills the server (2 s)."""
    if process.poll() is None:
        try:
            os.kill(postmaster_pid(workdir), signal.SIGINT)
            process.wait(timeout=15)
        except (OSError, ValueError, subprocess.TimeoutExpired):   # gone meanwhile, or stuck
            pass
    _stop(process)


def _wait_accepting(url: str, process: subprocess.Popen, limit: float = 30.0) -> None:
    """The port opens before PostgreSQL accepts sessions ("the database system is starting
    up"): wait for a real connection."""
    import psycopg
    deadline = time.monotonic() + limit
    while True:
        try:
            psycopg.connect(f"{url}/postgres", connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fresh_postgres_database(server_url: str) -> str:
    """A new empty database on the test server, so tests never share tables."""
    import psycopg
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


__all__ = ["start_redis", "start_postgres", "run_postgres", "stop_postgres", "postmaster_pid",
           "fresh_postgres_database", "_stop", "free_port"]
