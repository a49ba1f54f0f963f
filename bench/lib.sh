# shellcheck shell=bash
# Helpers for the bench scripts (sourced, never executed).
# Every server is started under setsid, so its PID is also its process group id;
# stop_group only ever receives PIDs that these scripts started.

BENCH_VENV=${BENCH_VENV:-/tmp/bench-venv}
BENCH_PY=${BENCH_PY:-$BENCH_VENV/bin/python}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# free_port : a TCP port on 127.0.0.1 that nothing listens on right now
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_status URL TIMEOUT_S [CODE] [PID] : poll a GET until it answers CODE (bounded);
# gives up early when PID (the server being waited for) has exited
wait_status() {
  local url=$1 timeout=${2:-30} want=${3:-200} pid=${4:-} deadline code
  deadline=$(($(date +%s) + timeout))
  while (($(date +%s) < deadline)); do
    [[ -z "$pid" ]] || kill -0 "$pid" 2>/dev/null || return 1
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
    [[ "$code" == "$want" ]] && return 0
    sleep 0.05
  done
  return 1
}

# chat_once BASE_URL : one non-stream completion; prints the HTTP status
chat_once() {
  curl -s -o /dev/null -m 10 -w '%{http_code}' -X POST "$1/v1/chat/completions" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" \
    -d '{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"ping"}]}' 2>/dev/null || true
}

# wait_chat BASE_URL TIMEOUT_S : poll a real completion until 200 (bounded)
wait_chat() {
  local base=$1 timeout=${2:-30} deadline
  deadline=$(($(date +%s) + timeout))
  while (($(date +%s) < deadline)); do
    [[ "$(chat_once "$base")" == 200 ]] && return 0
    sleep 0.25
  done
  return 1
}

# stop_group PID [GRACE_S] : TERM the process group PID leads, then KILL what is left
stop_group() {
  local pid=$1 grace=${2:-10} i
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid alive after ${grace}s: KILL to its group"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  kill -KILL -- "-$pid" 2>/dev/null || true   # workers left behind by the leader
  wait "$pid" 2>/dev/null || true
}

# busy_pct SECONDS : percent of all cores busy over the interval (/proc/stat)
busy_pct() {
  local a b
  a=$(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  sleep "${1:-1}"
  b=$(awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); dt=y[1]-x[1]; di=y[2]-x[2];
    if (dt<=0) print 0; else printf "%.0f\n", 100*(dt-di)/dt}'
}

# quiet_gate MAX_PCT TIMEOUT_S : wait (bounded) for the shared machine to calm down;
# prints the last busy % seen (our servers are idle at that moment)
quiet_gate() {
  local max=$1 timeout=$2 start=$SECONDS b
  while :; do
    b=$(busy_pct 1)
    if ((b <= max || SECONDS - start >= timeout)); then echo "$b"; return 0; fi
  done
}
