#!/usr/bin/env python3
"""CPU and memory of process trees (a server's master plus its workers) during a measurement.

  procmon.py watch --group NAME=PID [...] --max-seconds S --out FILE
      samples every 0.25 s until SIGTERM or S seconds: CPU seconds used by each tree, peak
      RSS sum, how busy the whole machine was, and how much of it was used by processes
      outside every group ("other_pct": other people's work on this shared box = noise).
  procmon.py rss --pid PID
      RSS of each process of the tree now, as JSON: {"master": MB, "children": [MB, ...]}.
"""
import argparse
import json
import signal
import sys
import time

import psutil

MB = 2 ** 20


def tree(pid):
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def rss_now(pid):
    procs = tree(pid)
    out = {"master": None, "children": []}
    for p in procs:
        try:
            mb = round(p.memory_info().rss / MB, 1)
        except psutil.Error:
            continue
        if p.pid == pid:
            out["master"] = mb
        else:
            out["children"].append(mb)
    return out


def watch(groups, max_seconds, interval=0.25):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    first, last, peak = {}, {}, {}
    sys0 = psutil.cpu_times()
    t0 = time.monotonic()
    while True:
        for name, root in groups.items():
            total = 0
            for p in tree(root):
                try:
                    with p.oneshot():
                        cpu = sum(p.cpu_times()[:2])
                        total += p.memory_info().rss
                except psutil.Error:
                    continue
                first.setdefault((name, p.pid), cpu)
                last[(name, p.pid)] = cpu
            peak[name] = max(peak.get(name, 0), total)
        if stop or time.monotonic() - t0 >= max_seconds:
            break
        time.sleep(interval)
    wall = time.monotonic() - t0
    sys1 = psutil.cpu_times()
    spent = sum(sys1) - sum(sys0)
    idle = (sys1.idle - sys0.idle) + (getattr(sys1, "iowait", 0) - getattr(sys0, "iowait", 0))
    ours = {pid: last[(name, pid)] - first[(name, pid)] for name, pid in last}  # a pid counts once
    ours_s = sum(ours.values()) + sum(psutil.Process().cpu_times()[:2])
    busy_s = spent - idle  # core-seconds: the system-wide times add up every core
    out = {"wall_s": round(wall, 2), "busy_pct": round(100 * busy_s / spent, 1) if spent else None,
           "other_pct": round(max(0.0, 100 * (busy_s - ours_s) / spent), 1) if spent else None,
           "groups": {}}
    for name in groups:
        cpu = sum(last[k] - first[k] for k in last if k[0] == name)
        out["groups"][name] = {"cpu_s": round(cpu, 3), "cores": round(cpu / wall, 3) if wall else None,
                               "peak_rss_mb": round(peak.get(name, 0) / MB, 1)}
    return out


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--group", action="append", default=[], help="NAME=PID")
    w.add_argument("--max-seconds", type=float, default=600)
    w.add_argument("--out", required=True)
    r = sub.add_parser("rss")
    r.add_argument("--pid", type=int, required=True)
    a = ap.parse_args()
    if a.cmd == "rss":
        print(json.dumps(rss_now(a.pid)))
        return 0
    groups = {}
    for g in a.group:
        name, _, pid = g.partition("=")
        if pid.strip():
            groups[name] = int(pid)
    with open(a.out, "w") as fh:
        json.dump(watch(groups, a.max_seconds), fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
