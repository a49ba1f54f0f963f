#!/usr/bin/env bash
# Profile Switchboard's workers under load with py-spy: wrk at PROFILE_CONC [16] connections
# on the 0 ms mock for PROFILE_SECONDS [40] s, sampled at PROFILE_RATE [50] Hz (py-spy falls behind
# at higher rates on 2 busy cores). Writes a flame graph
# (profile.svg), the raw stacks and hotspots.md (top functions by own time, with file:line)
# to OUT_DIR [/tmp/bench-results/profile-<timestamp>]. PROFILE_STREAM=1 profiles streaming.
# --gil: only the thread holding the GIL is sampled, so the figures are Python CPU time, not
# threads waiting on sockets, locks or the GIL (64 threads per worker would drown them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
PROFILE_CONC=${PROFILE_CONC:-16}
PROFILE_SECONDS=${PROFILE_SECONDS:-40}
PROFILE_RATE=${PROFILE_RATE:-50}
LOAD_SECONDS=$((PROFILE_SECONDS + 30))   # bound; stopped as soon as both recordings are done
OUT_DIR=${OUT_DIR:-/tmp/bench-results/profile-$(date +%Y%m%d-%H%M%S)}
export BENCH_API_KEY=${BENCH_API_KEY:-sk-bench}
[[ "${BENCH_SKIP_SETUP:-0}" == 1 ]] || PEER=none "$HERE/setup.sh"
mkdir -p "$OUT_DIR"
MOCK_PORT=$(free_port); SB_PORT=$(free_port); export MOCK_PORT SB_PORT
MOCK=""; SB=""; LOAD=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -z "$LOAD" ]] || kill -TERM "$LOAD" 2>/dev/null || true
  stop_group "$SB" 15; stop_group "$MOCK" 10
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MOCK_DIR="$OUT_DIR/mock" MOCK_INTERVAL_MS=0 setsid "$HERE/mock/start.sh" \
  > "$OUT_DIR/mock.log" 2>&1 < /dev/null &
MOCK=$!
wait_status "http://127.0.0.1:$MOCK_PORT/health" 20 200 "$MOCK" || die "mock did not start"
SB_DATA_DIR=$OUT_DIR/data setsid "$HERE/targets/switchboard.sh" > "$OUT_DIR/switchboard.log" 2>&1 < /dev/null &
SB=$!
if ! wait_status "http://127.0.0.1:$SB_PORT/health" 60 200 "$SB"; then
  tail -20 "$OUT_DIR/switchboard.log"; die "switchboard did not start"
fi
wait_chat "http://127.0.0.1:$SB_PORT" 30 || die "switchboard does not proxy"

url=http://127.0.0.1:$SB_PORT
if [[ "${PROFILE_STREAM:-0}" == 1 ]]; then
  "$BENCH_PY" "$HERE/loadgen.py" stream --url "$url" -c "$PROFILE_CONC" \
    --duration "$LOAD_SECONDS" --warmup 2 --expect-chunks 20 --api-key "$BENCH_API_KEY" \
    > "$OUT_DIR/load.txt" 2>&1 &
else
  wrk -t1 -c"$PROFILE_CONC" -d"${LOAD_SECONDS}s" --timeout 30s -s "$HERE/wrk_chat.lua" \
    "$url/v1/chat/completions" > "$OUT_DIR/load.txt" 2>&1 &
fi
LOAD=$!
sleep 2
log "py-spy: ${PROFILE_SECONDS}s on gunicorn master $SB and its workers, load c=$PROFILE_CONC"
"$BENCH_VENV/bin/py-spy" record --pid "$SB" --subprocesses --gil --rate "$PROFILE_RATE" --duration "$PROFILE_SECONDS" \
  --format raw --output "$OUT_DIR/profile.txt" > "$OUT_DIR/py-spy.log" 2>&1 \
  || { cat "$OUT_DIR/py-spy.log"; die "py-spy failed"; }
"$BENCH_VENV/bin/py-spy" record --pid "$SB" --subprocesses --gil --rate "$PROFILE_RATE" --duration 10 \
  --format flamegraph --output "$OUT_DIR/profile.svg" >> "$OUT_DIR/py-spy.log" 2>&1 \
  || log "WARN: no flame graph"
# wrk stops early on SIGINT and still prints its summary; the stream client runs to its bound
[[ "${PROFILE_STREAM:-0}" == 1 ]] || kill -INT "$LOAD" 2>/dev/null || true
wait "$LOAD" || true; LOAD=""
"$BENCH_PY" "$HERE/hotspots.py" "$OUT_DIR/profile.txt" > "$OUT_DIR/hotspots.md"
cat "$OUT_DIR/hotspots.md"
log "load: $(grep -h '^RESULT' "$OUT_DIR/load.txt" | cut -c8-)"
log "flame graph: $OUT_DIR/profile.svg; hot spots: $OUT_DIR/hotspots.md"
