#!/usr/bin/env python3
"""How many requests each gunicorn worker served: read from the per-process files of
prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, one counter_<pid>.db per
worker), where each worker counts its finished requests (switchboard_requests_total).

  worker_share.py snapshot DIR            {"<pid>": requests so far, ...} as JSON
  worker_share.py since DIR BEFORE_JSON   {"<pid>": requests since that snapshot, ...}

Runs with the proxy's own virtualenv (it has prometheus_client).
"""
import glob
import json
import os
import re
import sys

from prometheus_client.mmap_dict import MmapedDict

COUNTER = "switchboard_requests_total"


def snapshot(folder):
    counts = {}
    for path in glob.glob(os.path.join(folder, "counter_*.db")):
        pid = re.search(r"counter_(\d+)\.db$", path)
        if not pid:
            continue
        total = 0
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(path):
            if json.loads(key)[1] == COUNTER:
                total += value
        counts[pid.group(1)] = int(total)
    return counts


def main():
    mode, folder = sys.argv[1], sys.argv[2]
    now = snapshot(folder)
    if mode == "since":
        before = json.loads(sys.argv[3] or "{}")
        now = {pid: n - before.get(pid, 0) for pid, n in now.items() if n - before.get(pid, 0)}
    print(json.dumps(now))
    return 0


if __name__ == "__main__":
    sys.exit(main())
