#!/usr/bin/env python3
"""py-spy raw (collapsed) stacks -> markdown: where the CPU went, by own time.

  hotspots.py profile.txt [TOP]

Own time of a frame = samples in which it was the innermost frame (the code running).
profile.sh records with --gil (only the thread holding the GIL is sampled), so threads waiting
for a socket, a lock or the GIL do not count: the figures are Python CPU time.
Lines are `frame;frame;...;frame COUNT`, frames `function (file:line)`; py-spy adds a
`process ...` frame first with --subprocesses. Percentages are of all samples.
"""
import re
import sys
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?):(?P<line>\d+)\)$")


def short(path):
    for marker in ("/site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    by_line, by_func, by_file, by_file_incl = Counter(), Counter(), Counter(), Counter()
    total = 0
    for raw in open(path, encoding="utf-8", errors="replace"):
        stack, _, count = raw.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        m = FRAME.match(frames[-1])
        by_line[f"{m['func']} ({short(m['file'])}:{m['line']})"] += n
        by_func[f"{m['func']} ({short(m['file'])})"] += n
        by_file[short(m["file"])] += n
        seen = set()
        for f in frames:  # inclusive time of our own code, each file once per sample
            fm = FRAME.match(f)
            if (fm["file"].startswith("app/") or "/work/main/app/" in fm["file"]) and fm["file"] not in seen:
                seen.add(fm["file"])
                by_file_incl[short(fm["file"])] += n
    if not total:
        print("no samples")
        return 1
    print(f"# py-spy hot spots ({total} samples)\n")
    print(f"## Top {top} by own time, file:line\n")
    print("| # | own % | samples | function (file:line) |\n|---:|---:|---:|---|")
    for i, (k, v) in enumerate(by_line.most_common(top), 1):
        print(f"| {i} | {100 * v / total:.1f} | {v} | `{k}` |")
    print(f"\n## Top {top} by own time, per function\n")
    print("| # | own % | function (file) |\n|---:|---:|---|")
    for i, (k, v) in enumerate(by_func.most_common(top), 1):
        print(f"| {i} | {100 * v / total:.1f} | `{k}` |")
    print(f"\n## Top {top} by own time, per file\n")
    print("| # | own % | file |\n|---:|---:|---|")
    for i, (k, v) in enumerate(by_file.most_common(top), 1):
        print(f"| {i} | {100 * v / total:.1f} | `{k}` |")
    print("\n## Switchboard's own modules, inclusive time (the module is anywhere on the stack)\n")
    print("| inclusive % | file |\n|---:|---|")
    for k, v in by_file_incl.most_common(15):
        print(f"| {100 * v / total:.1f} | `{k}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
