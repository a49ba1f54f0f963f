#!/usr/bin/env python3
"""What held a gevent worker's hub: a summary of gevent's blocking reports in a server log.

With GEVENT_MONITOR_THREAD_ENABLE=1 and GEVENT_MAX_BLOCKING_TIME=<seconds> (run.sh sets both
for Switchboard when HUBWATCH_MS is given), gevent's monitor thread prints a report, with the
stack, each time a worker's hub has not run for that long: a greenlet blocking in C (a disk
write, SQLite, a long computation) holds every other request of the worker meanwhile. A busy
machine adds reports wherever the OS happened to stop the worker; real causes stand out by
repeating at the same place.

  hubwatch.py SERVER_LOG [--top N]   the places reported most, innermost first
"""
from __future__ import annotations

import argparse
import collections
import re

REPORT = "appears to be blocked"
GEVENT_THREADS = ("gevent/_monitor.py", "gevent/threadpool.py")  # not the hub's thread
FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def blocked_stacks(log: str) -> list[str]:
    """The stack each report names as blocked (the hub's thread), one string per report,
    without the reports on gevent's own threads (the monitor's, the thread pool's)."""
    stacks = []
    for report in log.split(REPORT)[1:]:
        _, _, stack = report.partition("Blocked Stack")
        stack = stack.split("\nInfo:")[0]
        frames = FRAME.findall(stack)
        if frames and not any(path.endswith(GEVENT_THREADS) for path, _, _ in frames):
            stacks.append(stack)
    return stacks


def place(frame: tuple[str, str, str]) -> str:
    path, line, function = frame
    short = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
    short = re.sub(r"^.*/(app|bench|tests)/", r"\1/", short)
    return f"{short}:{line} {function}"


def summary(log: str, top: int = 15) -> str:
    stacks = blocked_stacks(log)
    innermost, ours = collections.Counter(), collections.Counter()
    for stack in stacks:
        frames = FRAME.findall(stack)
        innermost[place(frames[-1])] += 1
        own = [f for f in frames if "/app/" in f[0] and "site-packages" not in f[0]]
        ours[place(own[-1]) if own else "(no frame of the app)"] += 1
    lines = [f"{len(stacks)} reports of a blocked hub", "", "| reports | innermost frame |",
             "|---:|---|"]
    lines += [f"| {n} | `{where}` |" for where, n in innermost.most_common(top)]
    lines += ["", "| reports | innermost frame of the app |", "|---:|---|"]
    lines += [f"| {n} | `{where}` |" for where, n in ours.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with open(args.log, errors="replace") as file:
        print(summary(file.read(), args.top))


if __name__ == "__main__":
    main()
