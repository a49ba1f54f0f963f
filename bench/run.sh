#!/usr/bin/env bash
# Switchboard's benchmark: direct-to-mock, Switchboard and a peer proxy (LiteLLM), measured
# interleaved in one run, so the ratios share the same machine noise. `make bench` runs it.
#
# Scenarios (SCENARIOS, default "1 2 3 4 5 6 7"; BENCH_QUICK=1 -> "1 2 4", short):
#   1 added latency, one request at a time, upstream 0 ms (+ the proxy's own
#     x-switchboard-overhead-ms header)
#   2 throughput, upstream 0 ms, THROUGHPUT_CONC ["16 64"] connections (wrk)
#   3 realistic: upstream REALISTIC_LATENCY_MS [1000], REALISTIC_CONC [1000] in flight (wrk);
#     each connection's first request starts at a random moment within REALISTIC_RAMP_MS [the
#     upstream latency], as arriving clients do: the steady state of 1,000 in flight, not one
#     burst of 1,000 at an instant (scenario 4's bursts are that; REALISTIC_RAMP_MS=0 for it here)
#   4 streaming, STREAM_CHUNKS [20] chunks STREAM_INTERVAL_MS [20] apart: TTFT at c=1, then
#     bursts of STREAM_BURSTS ["100 1000"] streams opened at once (all chunks + [DONE]?)
#   5 exact-cache hits at 64 connections: Switchboard restarted with CACHE_CONFIG_YAML
#     ["cache: {enabled: true, mode: exact}"] as its config; skipped, with the reason, when
#     a repeated request does not come back with x-switchboard-cache: hit
#   6 memory and start-up: fresh start (exec -> /health 200), RSS per process at idle and
#     after MEM_REQUESTS [100000] requests at c=16 (bounded by MEM_MAX_SECONDS [300])
#   7 scaling: added latency with BODY_KBS ["1 10 100"] KB of messages, and with
#     DEPLOYMENTS ["1 100 1000"] configured deployments (Switchboard only)
#   8 embeddings, a 16-input batch (1536-dimension vectors back): added latency at c=1 and
#     req/s at EMBED_CONC [16]; then the same batch fully cached (Switchboard restarted with
#     CACHE_CONFIG_YAML; direct and Switchboard only)
#   9 the Responses API (POST /v1/responses, store false): added latency at c=1 and req/s at
#     RESPONSES_CONC [16], passed through to the mock's /v1/responses (gpt-3.5-turbo) and
#     translated to the mock's Anthropic /v1/messages (claude-3-5-haiku-20241022); `direct`
#     is the mock's own endpoint for each
#   10 the Messages API (POST /v1/messages, what Claude Code sends): added latency at c=1 and
#     req/s at MESSAGES_CONC [16], passed through to the mock's Anthropic /v1/messages
#     (claude-3-5-haiku-20241022), each measurement beside the same request on the chat path
#     (/v1/chat/completions to the mock's OpenAI endpoint), back to back on the same mock;
#     `direct` is the mock's endpoint for each, LiteLLM its /v1/messages and chat endpoint
#   keys: req/s at KEYS_CONC [16] with a virtual key that has rpm, tpm and a budget (limits
#     far above the load, so every request is checked and counted, none refused), on the
#     embedded SQLite (switchboard+keys) and on PostgreSQL + Redis (switchboard+keys-pg,
#     servers started here when postgres and redis-server are installed), beside the same
#     Switchboard without a key (switchboard) and direct, interleaved
#   tracing: scenarios 1 and 2 (c=16) for Switchboard with OpenTelemetry on (OTLP/HTTP to the
#     mock's /v1/traces sink, every request sampled) beside Switchboard with it off, interleaved
# Knobs: DURATION [15 s per measurement], WARMUP [3 s], REPEATS [2], PEER [litellm|none],
#   MOCK_IMPL [nginx if installed, else aiohttp],
#   QUIET_MAX_BUSY [40] / QUIET_TIMEOUT [10]: before each measurement wait (bounded) until the
#   shared machine is at most that busy; OUT_DIR [/tmp/bench-results/<timestamp>];
#   BENCH_SKIP_SETUP=1 skips setup.sh; BASELINE=<git rev> also runs Switchboard as it was at
#   that commit (target switchboard@base, its code from `git archive`, the same venv), interleaved
#   with today's, so "before and after" share one run. HUBWATCH_MS: run Switchboard under
#   gevent's monitor thread and add to the summary what held a worker's hub longer than that
#   (bench/hubwatch.py; a diagnosis: the monitor's reports cost time themselves).
# Everything listens on 127.0.0.1; every load is bounded in time (and count); every process
# started here is stopped by its PID / process group on exit, Ctrl-C included.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=lib.sh
source "$HERE/lib.sh"

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  SCENARIOS=${SCENARIOS:-"1 2 4"}; DURATION=${DURATION:-5}; WARMUP=${WARMUP:-1}
  REPEATS=${REPEATS:-1}; QUIET_TIMEOUT=${QUIET_TIMEOUT:-2}; MEM_REQUESTS=${MEM_REQUESTS:-5000}
fi
SCENARIOS=${SCENARIOS:-"1 2 3 4 5 6 7 8 9 10 keys tracing"}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
REPEATS=${REPEATS:-2}
PEER=${PEER:-litellm}
QUIET_MAX_BUSY=${QUIET_MAX_BUSY:-40}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-10}
THROUGHPUT_CONC=${THROUGHPUT_CONC:-"16 64"}
REALISTIC_LATENCY_MS=${REALISTIC_LATENCY_MS:-1000}
REALISTIC_CONC=${REALISTIC_CONC:-1000}
REALISTIC_RAMP_MS=${REALISTIC_RAMP_MS:-$REALISTIC_LATENCY_MS}
REALISTIC_DURATION=${REALISTIC_DURATION:-$((DURATION > 20 ? DURATION : 20))}
STREAM_CHUNKS=${STREAM_CHUNKS:-20}
STREAM_INTERVAL_MS=${STREAM_INTERVAL_MS:-20}
STREAM_BURSTS=${STREAM_BURSTS:-"100 1000"}
CACHE_CONC=${CACHE_CONC:-64}
CACHE_CONFIG_YAML=${CACHE_CONFIG_YAML:-"cache: {enabled: true, mode: exact}"}
MEM_REQUESTS=${MEM_REQUESTS:-100000}
MEM_MAX_SECONDS=${MEM_MAX_SECONDS:-300}
BODY_KBS=${BODY_KBS:-"1 10 100"}
DEPLOYMENTS=${DEPLOYMENTS:-"1 100 1000"}
EMBED_CONC=${EMBED_CONC:-16}
RESPONSES_CONC=${RESPONSES_CONC:-16}
MESSAGES_CONC=${MESSAGES_CONC:-16}
KEYS_CONC=${KEYS_CONC:-16}
export BENCH_API_KEY=${BENCH_API_KEY:-sk-bench}
OUT_DIR=${OUT_DIR:-/tmp/bench-results/$(date +%Y%m%d-%H%M%S)}
HUBWATCH_MS=${HUBWATCH_MS:-}
HUBWATCH_ENV=""
if [[ -n "$HUBWATCH_MS" ]]; then
  HUBWATCH_ENV="GEVENT_MONITOR_THREAD_ENABLE=1 GEVENT_MAX_BLOCKING_TIME=$(awk -v ms="$HUBWATCH_MS" 'BEGIN{print ms / 1000}')"
fi
[[ "$PEER" == litellm || "$PEER" == none ]] || die "PEER must be litellm or none"

[[ "${BENCH_SKIP_SETUP:-0}" == 1 ]] || PEER=$PEER "$HERE/setup.sh"
mkdir -p "$OUT_DIR/raw"
RESULTS=$OUT_DIR/results.jsonl
: > "$RESULTS"
log "results -> $OUT_DIR"

MOCK_PORT=$(free_port); SB_PORT=$(free_port); PEER_PORT=$(free_port); OTEL_SB_PORT=$(free_port)
KEYS_SB_PORT=$(free_port); KEYS_PG_SB_PORT=$(free_port); PG_PORT=$(free_port); REDIS_PORT=$(free_port)
export MOCK_PORT SB_PORT PEER_PORT
declare -A URL=([direct]="http://127.0.0.1:$MOCK_PORT" [switchboard]="http://127.0.0.1:$SB_PORT"
                [switchboard+otel]="http://127.0.0.1:$OTEL_SB_PORT"
                [switchboard+keys]="http://127.0.0.1:$KEYS_SB_PORT"
                [switchboard+keys-pg]="http://127.0.0.1:$KEYS_PG_SB_PORT"
                [switchboard+pg]="http://127.0.0.1:$KEYS_PG_SB_PORT")  # the same, called without a key
# What a second Switchboard target runs with, beside the plain one. The keyed ones take the
# bench's key as their master key (start-up checks and the "no key" requests use it).
declare -A SB_TARGET_ENV=([switchboard]="SB_PORT=$SB_PORT"
  [switchboard+otel]="SB_PORT=$OTEL_SB_PORT OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$MOCK_PORT"
  [switchboard+keys]="SB_PORT=$KEYS_SB_PORT SWITCHBOARD_MASTER_KEY=$BENCH_API_KEY"
  [switchboard+keys-pg]="SB_PORT=$KEYS_PG_SB_PORT SWITCHBOARD_MASTER_KEY=$BENCH_API_KEY
    DATABASE_URL=postgresql://switchboard@127.0.0.1:$PG_PORT/postgres REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0")
declare -A PID=()
TARGETS=(direct switchboard)
if [[ "$PEER" == litellm ]]; then TARGETS+=(litellm); URL[litellm]="http://127.0.0.1:$PEER_PORT"; fi
if [[ -n "${BASELINE:-}" ]]; then
  BASE_SRC=$OUT_DIR/baseline-src; mkdir -p "$BASE_SRC"
  git -C "$ROOT" archive "$BASELINE" | tar -x -C "$BASE_SRC" || die "BASELINE: no commit $BASELINE"
  ln -s "$ROOT/.venv" "$BASE_SRC/.venv"
  BASE_SB_PORT=$(free_port); TARGETS+=(switchboard@base)
  URL[switchboard@base]="http://127.0.0.1:$BASE_SB_PORT"; SB_TARGET_ENV[switchboard@base]="SB_PORT=$BASE_SB_PORT"
fi
HELPERS=()   # load generators / monitors running in the background right now

cleanup() {
  local rc=$? p name
  trap - EXIT INT TERM
  for p in "${HELPERS[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  for name in litellm switchboard switchboard@base switchboard+otel switchboard+keys switchboard+keys-pg mock redis postgres; do
    if [[ -n "${PID[$name]:-}" ]]; then log "stopping $name (pid ${PID[$name]})"; stop_group "${PID[$name]}" 15; fi
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z "${MOCK_IMPL:-}" ]]; then   # nginx + lua when installed, else the aiohttp mock
  MOCK_IMPL=aiohttp
  if command -v nginx >/dev/null && [[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]]; then MOCK_IMPL=nginx; fi
fi
export MOCK_IMPL
version_of() { "$1" -c "import importlib.metadata as m; print(m.version('$2'))" 2>/dev/null || echo "?"; }
{
  echo "date: $(date -Is)"
  dirty=$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')
  echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$dirty"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -h | awk '/^Mem:/{print $2}') RAM"
  echo "tools: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), mock=$MOCK_IMPL"
  echo "switchboard: gunicorn.conf.py, worker_class=${SWITCHBOARD_WORKER_CLASS:-gevent}" \
    "workers=${WEB_CONCURRENCY:-2} threads=${SWITCHBOARD_THREADS:-64}"
  if [[ "$PEER" == litellm ]]; then
    echo "peer: litellm $(version_of "${PEER_VENV:-/tmp/peer-venv-old}/bin/python" litellm), ${PEER_WORKERS:-2} workers"
  fi
  echo "realistic: upstream ${REALISTIC_LATENCY_MS} ms, ${REALISTIC_CONC} connections, ${REALISTIC_DURATION}s"
  echo "realistic_latency_ms: $REALISTIC_LATENCY_MS"
  echo "realistic_ramp_ms: $REALISTIC_RAMP_MS"
  echo "stream: ${STREAM_CHUNKS} chunks ${STREAM_INTERVAL_MS} ms apart"
  echo "scenarios: $SCENARIOS; duration ${DURATION}s (+${WARMUP}s warm-up), repeats $REPEATS"
  [[ -z "${BASELINE:-}" ]] || echo "baseline: switchboard@base = $(git -C "$ROOT" rev-parse --short "$BASELINE")"
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT_DIR/meta.txt"

# ---------------------------------------------------------------- servers
start_mock() { # latency_ms interval_ms
  if [[ -n "${PID[mock]:-}" ]]; then stop_group "${PID[mock]}" 10; PID[mock]=""; fi
  MOCK_LATENCY_MS=$1 MOCK_INTERVAL_MS=$2 MOCK_CHUNKS=$STREAM_CHUNKS MOCK_DIR="$OUT_DIR/mock" \
    setsid "$HERE/mock/start.sh" > "$OUT_DIR/mock.log" 2>&1 < /dev/null &
  PID[mock]=$!
  if ! wait_status "${URL[direct]}/health" 20 200 "${PID[mock]}"; then
    cat "$OUT_DIR/mock.log" >&2; die "mock upstream did not start"
  fi
  log "mock upstream: latency ${1} ms, ${STREAM_CHUNKS} chunks ${2} ms apart (pid ${PID[mock]})"
  # proxies keep pooled connections to the previous mock: let them notice it is gone
  local t; for t in "${TARGETS[@]}"; do [[ -z "${PID[$t]:-}" ]] || wait_chat "${URL[$t]}" 30 || true; done
}

# start_target NAME [SB_CONFIG] : start (or restart) a proxy; records its start-up time
start_target() {
  local name=$1 config=${2:-} t0 ready health src=$ROOT
  [[ $name != switchboard@base ]] || src=$BASE_SRC
  if [[ -n "${PID[$name]:-}" ]]; then stop_group "${PID[$name]}" 15; PID[$name]=""; fi
  mkdir -p "$OUT_DIR/$name"
  t0=$(date +%s.%N)
  if [[ $name == switchboard* ]]; then
    # shellcheck disable=SC2086  # the target's VAR=value words
    env ${SB_TARGET_ENV[$name]} ${HUBWATCH_ENV:-} SB_CONFIG=$config SB_DATA_DIR=$OUT_DIR/$name/data \
      SB_METRICS_DIR=$OUT_DIR/$name/metrics \
      setsid "$src/bench/targets/switchboard.sh" >> "$OUT_DIR/$name/server.log" 2>&1 < /dev/null &
    health=/health
  else
    RUN_DIR="$OUT_DIR/$name" setsid "$HERE/targets/litellm.sh" >> "$OUT_DIR/$name/server.log" 2>&1 < /dev/null &
    health=/health/liveliness
  fi
  PID[$name]=$!
  if ! wait_status "${URL[$name]}$health" 240 200 "${PID[$name]}"; then
    tail -30 "$OUT_DIR/$name/server.log" >&2; die "$name did not answer $health"
  fi
  ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b - a}')
  if ! wait_chat "${URL[$name]}" 60; then
    tail -30 "$OUT_DIR/$name/server.log" >&2; die "$name does not proxy a completion"
  fi
  log "$name up in ${ready}s (pid ${PID[$name]})"
  LAST_STARTUP=$ready
}

sanity_check() { # target: the reply must be the mock's, the stream must end in [DONE]
  local t=$1 reply stream
  reply=$(curl -s -m 10 -D "$OUT_DIR/raw/sanity-$t.headers" -X POST "${URL[$t]}/v1/chat/completions" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" \
    -d '{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"hi"}]}')
  grep -q 'Hello from the bench mock upstream' <<<"$reply" || die "$t: reply is not the mock's: $reply"
  stream=$(curl -sN -m 10 -X POST "${URL[$t]}/v1/chat/completions" -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BENCH_API_KEY" \
    -d '{"model":"gpt-3.5-turbo","stream":true,"messages":[{"role":"user","content":"hi"}]}')
  [[ "$(tail -c 20 <<<"$stream" | tr -d '\n')" == *"data: [DONE]" ]] || die "$t: stream does not end with [DONE]"
  log "sanity $t: reply ok, stream of $(grep -c '"content":"w' <<<"$stream") content chunks ends in [DONE]"
}

# ---------------------------------------------------------------- measuring
# record SCENARIO CASE TARGET REPEAT TOOL_OUTPUT [MON_JSON] [EXTRA_JSON]
record() {
  PRE_BUSY=${PRE_BUSY:-} "$BENCH_PY" - "$@" >> "$RESULTS" <<'PY'
import json, os, sys
sc, case, target, rep, tool_out = sys.argv[1:6]
mon_path = sys.argv[6] if len(sys.argv) > 6 else ""
extra = json.loads(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[7] else {}
lines = [l for l in open(tool_out)] if os.path.exists(tool_out) else []
found = [l for l in lines if l.startswith("RESULT ")]
result = json.loads(found[-1][7:]) if found else {"failed": "".join(lines[-5:]).strip() or "no output"}
mon = json.load(open(mon_path)) if mon_path and os.path.exists(mon_path) else None
pre = os.environ.get("PRE_BUSY")
print(json.dumps({"scenario": sc, "case": case, "target": target, "repeat": int(rep),
                  "pre_busy_pct": float(pre) if pre else None, "result": result, "mon": mon, **extra}))
PY
}

gate() { PRE_BUSY=$(quiet_gate "$QUIET_MAX_BUSY" "$QUIET_TIMEOUT"); }

# measure SCENARIO CASE TARGET REPEAT -- COMMAND... : run a bounded load command with the
# CPU/RSS monitor beside it, then record both
measure() {
  local sc=$1 case=$2 t=$3 rep=$4; shift 5
  local tag; tag="$sc-${case//[^A-Za-z0-9=.]/_}-$t-r$rep"
  local mon_target=${PID[$t]:-${PID[mock]}}   # direct has no PID of its own: the mock
  local metrics=$OUT_DIR/$t/metrics before="" share=""
  gate
  [[ $t != switchboard* ]] || before=$(worker_share snapshot "$metrics")
  "$@" > "$OUT_DIR/raw/$tag.txt" 2>&1 &
  local load=$!
  local servers=() name
  for name in "${!PID[@]}"; do [[ -n "${PID[$name]}" ]] && servers+=(--group "server_$name=${PID[$name]}"); done
  "$BENCH_PY" "$HERE/procmon.py" watch --group "target=$mon_target" --group "loadgen=$load" "${servers[@]}" \
    --max-seconds 900 --out "$OUT_DIR/raw/$tag.mon.json" &
  local mon=$!
  HELPERS=("$load" "$mon")
  wait "$load" || true
  kill -TERM "$mon" 2>/dev/null || true; wait "$mon" 2>/dev/null || true
  HELPERS=()
  [[ $t != switchboard* ]] || share="{\"workers\": $(worker_share since "$metrics" "$before")}"
  record "$sc" "$case" "$t" "$rep" "$OUT_DIR/raw/$tag.txt" "$OUT_DIR/raw/$tag.mon.json" "$share"
  "$BENCH_PY" "$HERE/summarize.py" --line "$RESULTS" >&2
}

# requests served per worker (bench/worker_share.py); {} when it cannot tell
worker_share() { "$ROOT/.venv/bin/python" "$HERE/worker_share.py" "$@" 2>/dev/null || echo "{}"; }

loadgen() { "$BENCH_PY" "$HERE/loadgen.py" "$@" --api-key "$BENCH_API_KEY"; }

wrk_run() { # url conc seconds [extra wrk args]; BENCH_PATH / BENCH_BODY_FILE: another request
  local url=$1 conc=$2 secs=$3; shift 3
  local threads=1; ((conc >= 256)) && threads=2
  wrk -t"$threads" -c"$conc" -d"${secs}s" --timeout 30s -s "$HERE/wrk_chat.lua" "$@" "$url${BENCH_PATH:-/v1/chat/completions}"
}

wrk_measure() { # sc case target rep conc seconds
  local sc=$1 case=$2 t=$3 rep=$4 conc=$5 secs=$6
  ((WARMUP > 0)) && wrk_run "${URL[$t]}" "$conc" "$WARMUP" > /dev/null 2>&1 || true
  measure "$sc" "$case" "$t" "$rep" -- wrk_run "${URL[$t]}" "$conc" "$secs"
}

# ---------------------------------------------------------------- scenarios
source "$HERE/scenarios.sh"

# ---------------------------------------------------------------- run
start_mock 0 0
for t in "${TARGETS[@]}"; do
  [[ $t == direct ]] || start_target "$t"
  sanity_check "$t"
done
for sc in $SCENARIOS; do
  declare -F "scenario_$sc" > /dev/null || die "unknown scenario $sc (1-10, keys, tracing)"
  log "---- scenario $sc"
  "scenario_$sc"
done
echo "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT_DIR/meta.txt"
"$BENCH_PY" "$HERE/summarize.py" "$OUT_DIR" > "$OUT_DIR/summary.md"
if [[ -n "$HUBWATCH_ENV" ]]; then
  for log_file in "$OUT_DIR"/switchboard*/server.log; do
    printf '\n## %s: what held a worker'"'"'s hub longer than %s ms\n\n' \
      "$(basename "$(dirname "$log_file")")" "$HUBWATCH_MS" >> "$OUT_DIR/summary.md"
    "$ROOT/.venv/bin/python" "$HERE/hubwatch.py" "$log_file" >> "$OUT_DIR/summary.md"
  done
fi
cat "$OUT_DIR/summary.md"
log "summary -> $OUT_DIR/summary.md"
