"""prometheus_client's multiprocess values with the process id kept in memory
(app/metrics_pid.py): a forked process still counts in a file of its own, and the sum over
processes is right. In a fresh interpreter: multiprocess mode is chosen at import."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import os, sys
    from app import metrics_pid
    metrics_pid.install()
    from prometheus_client import CollectorRegistry, Counter, values
    from prometheus_client.multiprocess import MultiProcessCollector
    assert values.ValueClass is not None
    requests = Counter("requests", "requests", ["path"])
    requests.labels("/a").inc()                      # the parent (a gunicorn master, say)
    child = os.fork()
    if child == 0:                                   # a worker
        assert metrics_pid.current_pid() == os.getpid()
        requests.labels("/a").inc(2)
        requests.labels("/b").inc(5)
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert metrics_pid.current_pid() == os.getpid()
    requests.labels("/a").inc(10)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    print(child, os.getpid(), registry.get_sample_value("requests_total", {"path": "/a"}),
          registry.get_sample_value("requests_total", {"path": "/b"}))
""")


def test_a_forked_process_counts_in_its_own_file(tmp_path):
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    child, parent, a, b = run.stdout.split()
    assert (float(a), float(b)) == (13.0, 5.0)
    assert {p.name for p in tmp_path.iterdir()} == {f"counter_{parent}.db", f"counter_{child}.db"}


def test_installing_again_keeps_the_values_class(tmp_path):
    """gunicorn's master reads its config again on a reload: the values made so far and the
    ones made after must share one class (one mapping of each file)."""
    script = ("from app import metrics_pid\nfrom prometheus_client import values\n"
              "metrics_pid.install(); first = values.ValueClass\n"
              "metrics_pid.install(); print(values.ValueClass is first)\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60,
                         env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True"]
