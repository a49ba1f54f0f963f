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
request's CPU, the export thread's encoding and sending included. `--stream`: bursts of
`--requests` streams opened at once (bench/loadgen.py burst, scenario 4's client) through
one gunicorn, against a mock sending 20 chunks 20 ms apart and one sending 2: the CPU of
gunicorn's process tree per stream, and per chunk from the difference of the two.

    .venv/bin/python bench/face_cpu.py --requests 2000 --rounds 3 [--profile 25 | --gunicorn | --tracing]
    .venv/bin/python bench/face_cpu.py --stream --requests 500 --rounds 3
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


def start_mock(port: int, folder: str, **env: str) -> subprocess.Popen:
    mock = subprocess.Popen([str(HERE / "mock" / "start.sh")], start_new_session=True,
                            env={**os.environ, "MOCK_PORT": str(port), "MOCK_DIR": folder, **env},
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


# Scenario 4's upstream: chunks 20 ms apart; the long and the short stream per mock.
STREAM_INTERVAL_MS, LONG, SHORT = 20, 20, 2
LOADGEN_PYTHON = os.environ.get("BENCH_PY", "/tmp/bench-venv/bin/python")


class StreamBurst:
    """Bursts of streams through one Switchboard to the mock at `mock_port` (which sends
    `chunks` chunks per stream): `run` measures the CPU of gunicorn's process tree per
    stream, and keeps the last burst's peak of streams open at once and TTFT p50."""

    def __init__(self, server: Server, mock_port: int, chunks: int):
        self.server, self.chunks, self.mock_port = server, chunks, mock_port
        self.peaks: list[int] = []
        self.ttfts: list[float] = []

    def run(self, path: str, body: bytes, count: int) -> float:
        started = tree_cpu(self.server.process.pid)
        out = subprocess.run([LOADGEN_PYTHON, str(HERE / "loadgen.py"), "burst", "--url",
                              f"http://127.0.0.1:{self.server.port}", "--streams", str(count),
                              "--expect-chunks", str(self.chunks), "--timeout", "120"],
                             capture_output=True, text=True, check=True).stdout
        spent = tree_cpu(self.server.process.pid) - started
        result = json.loads(out.split("RESULT ", 1)[1])
        if result["error_count"]:
            sys.exit(f"burst of {count}: errors {result['errors']}")
        self.peaks.append(result["peak_open_streams"])
        self.ttfts.append(result["ttft_ms"]["p50"])
        return spent / count


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
    where = ("gunicorn's process tree" if args.gunicorn or args.tracing or args.stream
             else "in process")
    mean_base = statistics.mean(figures[base_name])
    print(f"CPU ms per request ({where}), {args.rounds} rounds of {args.requests} requests:")
    for name, values in figures.items():
        best, mean = min(values), statistics.mean(values)
        print(f"  {name:38s} best {best * 1e3:.3f} ({(best - base) * 1e3:+.3f} vs first), "
              f"mean {mean * 1e3:.3f} ({(mean - mean_base) * 1e3:+.3f}), "
              f"rounds: {', '.join(f'{v * 1e3:.3f}' for v in values)}")


def report_stream(figures: dict[str, list[float]], bursts: list[StreamBurst]) -> None:
    long, short = (statistics.mean(values) for values in figures.values())
    print(f"  per chunk: {(long - short) / (LONG - SHORT) * 1e3:.3f} ms "
          f"(means: ({long * 1e3:.3f} - {short * 1e3:.3f}) / {LONG - SHORT})")
    for burst in bursts:
        print(f"  {burst.chunks} chunks: peak open at once {burst.peaks}, "
              f"TTFT p50 ms {burst.ttfts}")


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
    parser.add_argument("--stream", action="store_true",
                        help="CPU per stream and per chunk: bursts of --requests streams")
    args = parser.parse_args()
    bodies = {name: (path, json.dumps(body).encode()) for name, (path, body) in PATHS.items()}
    with tempfile.TemporaryDirectory(prefix="face-cpu-") as folder:
        mock_port = free_port()
        mock = start_mock(mock_port, folder, MOCK_INTERVAL_MS=str(STREAM_INTERVAL_MS),
                          MOCK_CHUNKS=str(LONG)) if args.stream else start_mock(mock_port, folder)
        servers: list[Server] = []
        mocks = [mock]
        try:
            if args.stream:
                short_port = free_port()
                mocks.append(start_mock(short_port, folder + "/short", MOCK_CHUNKS=str(SHORT),
                                        MOCK_INTERVAL_MS=str(STREAM_INTERVAL_MS)))
                servers = [start_switchboard(mock_port, folder),
                           start_switchboard(short_port, folder + "/short")]
                bursts = [StreamBurst(servers[0], mock_port, LONG),
                          StreamBurst(servers[1], short_port, SHORT)]
                chat = bodies["chat -> openai"]
                runs = {f"stream of {b.chunks} chunks": (*chat, b.run) for b in bursts}
            elif args.tracing:
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
            if args.stream:
                report_stream(figures, bursts)
            if args.profile and not servers:
                for name, (path, body) in bodies.items():
                    print(f"\n==== {name}\n" + profile(client, path, body, args.requests,
                                                        args.profile))
        finally:
            for process in (*(server.process for server in servers), *mocks):
                os.killpg(process.pid, 15)
                process.wait(15)


if __name__ == "__main__":
    main()
