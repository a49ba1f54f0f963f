#!/usr/bin/env bash
# Run Switchboard in the foreground under gunicorn with the repo's gunicorn.conf.py; exec, so
# the PID the caller holds is gunicorn's master. Env: SB_PORT, MOCK_PORT (required),
# SB_CONFIG (a YAML file for SWITCHBOARD_CONFIG, optional), SB_DATA_DIR (SWITCHBOARD_DATA_DIR:
# the usage ledger and the disk cache; default /tmp/bench-switchboard-data, never the repo),
# SB_METRICS_DIR (PROMETHEUS_MULTIPROC_DIR: bench/worker_share.py reads each worker's count
# there; a temporary folder otherwise). Worker class, workers and threads
# come from gunicorn.conf.py and its variables (SWITCHBOARD_WORKER_CLASS, WEB_CONCURRENCY, ...).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export HOST=127.0.0.1 PORT="${SB_PORT:?}"
export OPENAI_API_KEY=sk-bench
export OPENAI_API_BASE="http://127.0.0.1:${MOCK_PORT:?}/v1"
export ANTHROPIC_API_KEY=sk-bench ANTHROPIC_API_BASE="http://127.0.0.1:$MOCK_PORT"
export SWITCHBOARD_CONFIG="${SB_CONFIG:-}"
export SWITCHBOARD_DATA_DIR="${SB_DATA_DIR:-/tmp/bench-switchboard-data}"
if [[ -n "${SB_METRICS_DIR:-}" ]]; then export PROMETHEUS_MULTIPROC_DIR=$SB_METRICS_DIR; fi
exec "$ROOT/.venv/bin/gunicorn" -c gunicorn.conf.py
