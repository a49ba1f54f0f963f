"""Shared fixtures: provider emulators, the Flask app on given settings, and real gunicorn."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import urllib3

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.cohere import CohereEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.huggingface import HuggingFaceEmulator
from tests.emulators.openai import AzureEmulator, OpenAIEmulator
from tests.emulators.replicate import ReplicateEmulator
from tests.provider_fixtures import app_maker, emulator_fixture, proxy_app, sdk_for
from tests.provider_fixtures import emulators  # noqa: F401  (the session fixture, for all tests)
from tests.servers import (HANDED_OUT_PORTS, _stop, fresh_postgres_database, start_postgres,
                           start_redis, stop_postgres)

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """The run's folder of handed-out ports (tests/servers.py free_port), made by the process
    that starts the run; pytest-xdist's workers inherit it."""
    if HANDED_OUT_PORTS not in os.environ:
        os.environ[HANDED_OUT_PORTS] = config.handed_out_ports = tempfile.mkdtemp(
            prefix="switchboard-test-ports-")


def pytest_unconfigure(config) -> None:
    if getattr(config, "handed_out_ports", None):
        shutil.rmtree(config.handed_out_ports, ignore_errors=True)


openai_emu = emulator_fixture(OpenAIEmulator, "openai_emu")
azure_emu = emulator_fixture(AzureEmulator, "azure_emu")


@pytest.fixture
def provider_env(openai_emu, azure_emu, tmp_path) -> dict[str, str]:
    """Environment that points every provider at its emulator, with the proxy's own storage
    (ledger, disk cache) in the test's temporary folder."""
    return {**openai_emu.proxy_env(), **azure_emu.proxy_env(),
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def write_config(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "switchboard.yaml"
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def make_client(provider_env):
    """A Flask test client for a proxy built from `provider_env` plus overrides and a config."""
    make_app = app_maker(provider_env)

    def make(env: dict | None = None, config: str | None = None):
        return make_app(env, config).test_client()
    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def app(provider_env):
    """The proxy's Flask app on `provider_env`."""
    return proxy_app(provider_env)


@pytest.fixture
def sdk(app):
    """The official openai SDK talking to `app` in process."""
    return sdk_for(app)


from tests.servers import free_port  # noqa: E402  (re-exported for the tests)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    _stop(process)


@pytest.fixture
def redis_url(redis_server):
    """A real redis-server, emptied for each test."""
    import redis
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture(scope="session")
def postgres_server():
    process, url, workdir = start_postgres()
    yield url
    stop_postgres(process, workdir)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on a real PostgreSQL server."""
    return fresh_postgres_database(postgres_server)


class GunicornProxy:
    """A real gunicorn process started from gunicorn.conf.py on a free loopback port."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: tuple[str, ...] = ()):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
                    "HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "2",
                    "SWITCHBOARD_THREADS": "16", **env}
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"], cwd=ROOT,
            env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        http = urllib3.PoolManager()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_path.read_text()[-2000:]}")
            try:
                if http.request("GET", f"{self.base_url}/health", timeout=1.0,
                                retries=False).status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn not ready in {limit} s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(params=["gevent", "gthread"])
def worker_class(request) -> str:
    """Both worker classes gunicorn.conf.py supports, for tests that drive real clients."""
    return request.param


EVERY_EMULATOR = (OpenAIEmulator, AzureEmulator, AnthropicEmulator, CohereEmulator,
                  GeminiEmulator, HuggingFaceEmulator, ReplicateEmulator)


@pytest.fixture(scope="session")
def shared_gunicorn(emulators, tmp_path_factory):
    """`get(worker_class="gevent")`: a gunicorn on the default settings with every provider
    pointed at its emulator, one per worker class, started on first use and shared by the
    tests (of any module) that only send requests and read their own answers: no config,
    no key, no storage read. Each of those tests still takes its emulators' fixtures, which
    reset them and hold its requests to the contract."""
    running: dict[str, GunicornProxy] = {}

    def get(worker_class: str = "gevent") -> GunicornProxy:
        if worker_class not in running:
            folder = tmp_path_factory.mktemp(f"gunicorn-{worker_class}")
            env = {"SWITCHBOARD_WORKER_CLASS": worker_class,
                   "SWITCHBOARD_DATA_DIR": str(folder / "data")}
            for emulator_class in EVERY_EMULATOR:
                env.update(emulators(emulator_class).proxy_env())
            running[worker_class] = GunicornProxy(env, folder / "gunicorn.log")
        return running[worker_class]

    yield get
    for proxy in running.values():
        proxy.stop()


def module_gunicorn(request, env: dict[str, str]) -> GunicornProxy:
    """A gunicorn for a module-scoped fixture (`request` is its own): the tests of a module
    that only read what they sent themselves (their own keys, request ids, emulator faults)
    share it instead of waiting for a start and a stop each. On the OpenAI and Azure
    emulators, with storage of its own, plus `env`; stopped when the fixture ends."""
    emulators = request.getfixturevalue("emulators")
    folder = request.getfixturevalue("tmp_path_factory").mktemp("gunicorn")
    proxy = GunicornProxy({**emulators(OpenAIEmulator).proxy_env(),
                           **emulators(AzureEmulator).proxy_env(),
                           "SWITCHBOARD_DATA_DIR": str(folder / "data"), **env},
                          folder / "gunicorn.log")
    request.addfinalizer(proxy.stop)
    return proxy


@pytest.fixture
def start_gunicorn(tmp_path):
    started: list[GunicornProxy] = []

    def start(env: dict[str, str], prefix: tuple[str, ...] = ()) -> GunicornProxy:
        """`prefix`: a command that runs gunicorn (setpriv, say)."""
        proxy = GunicornProxy(env, tmp_path / f"gunicorn-{len(started)}.log", prefix)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
