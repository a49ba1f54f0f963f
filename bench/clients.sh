#!/usr/bin/env bash
# The HTTP client comparison (bench/clients.py) against the mock upstream at 0 ms:
# `make bench-clients`. CALLS [3000] per round, REPEATS [3] rounds, interleaved.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=lib.sh
source "$HERE/lib.sh"
[[ "${BENCH_SKIP_SETUP:-0}" == 1 ]] || PEER=none "$HERE/setup.sh"
MOCK_PORT=$(free_port); export MOCK_PORT
MOCK_DIR=$(mktemp -d)
MOCK_DIR=$MOCK_DIR MOCK_INTERVAL_MS=0 setsid "$HERE/mock/start.sh" > "$MOCK_DIR/mock.log" 2>&1 < /dev/null &
MOCK=$!
trap 'stop_group "$MOCK" 10; rm -rf "$MOCK_DIR"' EXIT
wait_status "http://127.0.0.1:$MOCK_PORT/health" 20 200 "$MOCK" || die "mock did not start"
"$ROOT/.venv/bin/python" "$HERE/clients.py" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" \
  "${CALLS:-3000}" "${REPEATS:-3}"
