"""What a served proxy loads in its master before it forks the workers (gunicorn.conf.py's
pre_fork): tiktoken's tables, so each worker shares them and none stalls its requests
loading them at its first token count."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import runpy
from app.usage import tokens
hooks = runpy.run_path("gunicorn.conf.py")
assert tokens.encoding.cache_info().currsize == 0, "loaded before the fork"
hooks["pre_fork"](None, None)
loaded = tokens.encoding.cache_info().currsize
print(loaded, tokens.encoding_for("gpt-4o").name, tokens.encoding_for("claude-3-5-haiku").name,
      tokens.encoding.cache_info().misses)
"""


def test_the_master_loads_the_token_tables_before_forking():
    env = {**os.environ, "SWITCHBOARD_WORKER_CLASS": "gthread"}   # no gevent patching here
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # both tables loaded by the hook; the models' counts then load nothing more
    assert run.stdout.split() == ["2", "o200k_base", "cl100k_base", "2"]


VANISHED = """
import runpy
hooks = runpy.run_path("gunicorn.conf.py")
class MastersCopy:   # gunicorn's Worker as the master holds it: it never loaded the app
    pid = 4242
hooks["worker_exit"](None, MastersCopy())
print("stopped")
"""


def test_the_master_stops_a_worker_that_vanished_first():
    """gunicorn calls worker_exit in the master for a worker already gone when the master
    stops it; raising there cut the master's stop short (its temporary metrics folder was
    left behind)."""
    env = {**os.environ, "SWITCHBOARD_WORKER_CLASS": "gthread"}
    run = subprocess.run([sys.executable, "-c", VANISHED], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["stopped"]
