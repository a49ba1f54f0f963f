#!/usr/bin/env bash
# Run the mock upstream in the foreground (the caller starts it under setsid and stops it
# by PID). Env: MOCK_PORT (required), MOCK_LATENCY_MS [0], MOCK_INTERVAL_MS [0] (gap
# between stream chunks), MOCK_CHUNKS [20], MOCK_IMPL [nginx|aiohttp; nginx if installed],
# MOCK_DIR [/tmp/bench-mock-$MOCK_PORT] (rendered config and logs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${MOCK_PORT:?MOCK_PORT is required}"
LATENCY_MS=${MOCK_LATENCY_MS:-0}
INTERVAL_MS=${MOCK_INTERVAL_MS:-0}
CHUNKS=${MOCK_CHUNKS:-20}
DIR=${MOCK_DIR:-/tmp/bench-mock-$MOCK_PORT}
IMPL=${MOCK_IMPL:-}
if [[ -z "$IMPL" ]]; then
  IMPL=aiohttp
  command -v nginx >/dev/null && [[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] && IMPL=nginx
fi
mkdir -p "$DIR"
if [[ "$IMPL" == nginx ]]; then
  seconds() { awk -v ms="$1" 'BEGIN{printf "%.6f", ms / 1000}'; }
  sed -e "s|__PORT__|$MOCK_PORT|g" -e "s|__DIR__|$DIR|g" -e "s|__CHUNKS__|$CHUNKS|g" \
      -e "s|__LATENCY_S__|$(seconds "$LATENCY_MS")|g" -e "s|__INTERVAL_S__|$(seconds "$INTERVAL_MS")|g" \
      "$HERE/nginx.conf.tmpl" > "$DIR/nginx.conf"
  exec nginx -p "$DIR" -c "$DIR/nginx.conf"
fi
exec "${BENCH_PY:-/tmp/bench-venv/bin/python}" "$HERE/mock_aiohttp.py" --port "$MOCK_PORT" \
  --latency-ms "$LATENCY_MS" --interval-ms "$INTERVAL_MS" --chunks "$CHUNKS"
