#!/usr/bin/env python3
"""CPU per request of each face against the mock upstream (a process of its own, so its CPU
is not counted), the paths interleaved round after round so that they share the machine's
noise. In process (default): the Flask app driven by its test client, the figure being the
process's CPU time (every thread: the ledger writer included); `--profile N` adds each
path's top N functions by own time (cProfile). `--gunicorn`: Switchboard as the bench runs
it (bench/targets/switchboard.sh), one keep-alive connection, the figure being the CPU of
gunicorn's whole process tree (master + workers). `--tracing`: the chat path only, through two
such servers, one with OpenTelemetry off and one exporting every span to the mock's OTLP sink
(as the bench's `tracing` scenario runs them), one worker each: what tracing adds to a
request's CPU, the export thread's encoding and sending included.

    .venv/bin/python bench/face_cpu.py --requests 2000 --rounds 3 [--profile 25 | --gunicorn | --tracing]
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import http.client
import io
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
ASK = "Say hello in one short sentence."
# path name -> (URL path, body): the chat path as scenarios 1-2 send it, the same request to
# a Claude model (translated to the mock's /v1/messages), and the Messages request scenario 10
# passes through to it.
PATHS = {
    "chat -> openai": ("/v1/chat/completions", {
        "model": "gpt-3.5-turbo", "messages": [SYSTEM, {"role": "user", "content": ASK}],
        "max_tokens": 32, "temperature": 0}),
    "chat -> anthropic (translated)": ("/v1/chat/completions", {
        "model": "claude-3-5-haiku-20241022",
        "messages": [SYSTEM, {"role": "user", "content": ASK}], "max_tokens": 32,
        "temperature": 0}),
    "messages -> anthropic (pass-through)": ("/v1/messages", {
        "model": "claude-3-5-haiku-20241022", "system": SYSTEM["content"],
        "messages": [{"role": "user", "content": ASK}], "max_tokens": 32, "temperature": 0}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mock(port: int, folder: str) -> subprocess.Popen:
    mock = subprocess.Popen([str(HERE / "mock" / "start.sh")], start_new_session=True,
                            env={**os.environ, "MOCK_PORT": str(port), "MOCK_DIR": folder},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(port, mock)
    return mock


HEADERS = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}


def run(client, path: str, body: bytes, count: int) -> float:
    """CPU seconds per request over `count` requests (each must succeed) in process."""
    started = time.process_time()
    for _ in range(count):
        response = client.post(path, data=body, headers=HEADERS)
        if response.status_code != 200:
            sys.exit(f"{path}: HTTP {response.status_code} {response.get_data(as_text=True)}")
    return (time.process_time() - started) / count


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue   # it just exited
    return total


class Server:
    """Switchboard under gunicorn: `post` over one keep-alive connection; `run` measures
    the CPU of gunicorn's process tree per request."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.port = process, port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes) -> None:
        self.connection.request("POST", path, body, HEADERS)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200:
            sys.exit(f"{path}: HTTP {response.status} {answer[:500]!r}")

    def run(self, path: str, body: bytes, count: int) -> float:
        started = tree_cpu(self.process.pid)
        for _ in range(count):
            self.post(path, body)
        return (tree_cpu(self.process.pid) - started) / count


def start_switchboard(mock_port: int, folder: str, **env: str) -> Server:
    port = free_port()
    process = subprocess.Popen([str(HERE / "targets" / "switchboard.sh")],
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "SB_PORT": str(port),
                                    "MOCK_PORT": str(mock_port), "SB_DATA_DIR": folder, **env})
    wait_healthy(port, process)
    return Server(process, port)


def wait_healthy(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    os.killpg(process.pid, 9)
    sys.exit(f"the server on port {port} did not start")


def profile(client, path: str, body: bytes, count: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run(client, path, body, count)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def in_process(mock_port: int, folder: str):
    """The app's test client, as a measuring function like Server.run."""
    os.environ.update({
        "OPENAI_API_KEY": "sk-bench", "OPENAI_API_BASE": f"http://127.0.0.1:{mock_port}/v1",
        "ANTHROPIC_API_KEY": "sk-bench", "ANTHROPIC_API_BASE": f"http://127.0.0.1:{mock_port}",
        "SWITCHBOARD_DATA_DIR": folder, "SWITCHBOARD_CONFIG": ""})
    sys.path.insert(0, str(HERE.parent))
    from app.api import create_app
    return create_app().test_client()


def report(figures: dict[str, list[float]], args) -> None:
    base_name = next(iter(figures))
    base = min(figures[base_name])
    where = "gunicorn's process tree" if args.gunicorn or args.tracing else "in process"
    mean_base = statistics.mean(figures[base_name])
    print(f"CPU ms per request ({where}), {args.rounds} rounds of {args.requests} requests:")
    for name, values in figures.items():
        best, mean = min(values), statistics.mean(values)
        print(f"  {name:38s} best {best * 1e3:.3f} ({(best - base) * 1e3:+.3f} vs first), "
              f"mean {mean * 1e3:.3f} ({(mean - mean_base) * 1e3:+.3f}), "
              f"rounds: {', '.join(f'{v * 1e3:.3f}' for v in values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print each path's top N functions by own time")
    parser.add_argument("--gunicorn", action="store_true",
                        help="measure Switchboard under gunicorn instead of in process")
    parser.add_argument("--tracing", action="store_true",
                        help="the chat path under gunicorn with tracing off and on")
    args = parser.parse_args()
    bodies = {name: (path, json.dumps(body).encode()) for name, (path, body) in PATHS.items()}
    with tempfile.TemporaryDirectory(prefix="face-cpu-") as folder:
        mock_port = free_port()
        mock = start_mock(mock_port, folder)
        servers: list[Server] = []
        try:
            if args.tracing:
                one = {"WEB_CONCURRENCY": "1"}
                servers = [start_switchboard(mock_port, folder, **one),
                           start_switchboard(mock_port, folder, **one,
                                             OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{mock_port}")]
                chat = bodies["chat -> openai"]
                runs = {"chat, tracing off": (*chat, servers[0].run),
                        "chat, tracing on": (*chat, servers[1].run)}
            elif args.gunicorn:
                servers = [start_switchboard(mock_port, folder)]
                runs = {name: (*request, servers[0].run) for name, request in bodies.items()}
            else:
                client = in_process(mock_port, folder)
                runs = {name: (*request, functools.partial(run, client))
                        for name, request in bodies.items()}
            for path, body, measure in runs.values():
                measure(path, body, max(1, args.requests // 10))   # warm up
            figures: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, (path, body, measure) in runs.items():
                    figures[name].append(measure(path, body, args.requests))
            report(figures, args)
            if args.profile and not servers:
                for name, (path, body) in bodies.items():
                    print(f"\n==== {name}\n" + profile(client, path, body, args.requests,
                                                        args.profile))
        finally:
            for process in (*(server.process for server in servers), mock):
                os.killpg(process.pid, 15)
                process.wait(15)


if __name__ == "__main__":
    main()
