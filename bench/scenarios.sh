# shellcheck shell=bash
# The bench's scenarios, one function each (scenario_<name>), sourced by run.sh after its
# servers and measuring helpers: each starts the mock it needs and measures every target
# of TARGETS, repeat after repeat, through `measure` / `wrk_measure`.

scenario_1() {
  start_mock 0 0
  local rep t
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    measure 1 "c=1" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" --duration "$DURATION" --warmup "$WARMUP"
  done; done
}

scenario_2() {
  start_mock 0 0
  local c rep t
  for c in $THROUGHPUT_CONC; do for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    wrk_measure 2 "c=$c" "$t" "$rep" "$c" "$DURATION"
  done; done; done
}

scenario_3() {
  start_mock "$REALISTIC_LATENCY_MS" 0
  local rep t
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    BENCH_RAMP_MS=$REALISTIC_RAMP_MS BENCH_CONNECTIONS_PER_THREAD=$((REALISTIC_CONC / (REALISTIC_CONC >= 256 ? 2 : 1))) \
      measure 3 "c=$REALISTIC_CONC" "$t" "$rep" -- wrk_run "${URL[$t]}" "$REALISTIC_CONC" "$REALISTIC_DURATION"
    sleep 2   # let the server drain what wrk left in flight before the next target
  done; done
}

scenario_4() {
  start_mock 0 "$STREAM_INTERVAL_MS"
  local rep t n
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    measure 4 "c=1" "$t" "$rep" -- loadgen stream --url "${URL[$t]}" -c 1 --duration "$DURATION" \
      --warmup "$WARMUP" --expect-chunks "$STREAM_CHUNKS"
  done; done
  for n in $STREAM_BURSTS; do for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    measure 4 "burst=$n" "$t" "$rep" -- loadgen burst --url "${URL[$t]}" --streams "$n" --timeout 60 \
      --expect-chunks "$STREAM_CHUNKS"
  done; done; done
}

scenario_5() {
  start_mock 0 0
  local config=$OUT_DIR/switchboard-cache.yaml hdr=$OUT_DIR/raw/5-probe.headers seen rep t i
  printf '%s\n' "$CACHE_CONFIG_YAML" > "$config"
  start_target switchboard "$config"
  for i in 1 2; do   # the same request twice: the second one must be a hit
    curl -s -o /dev/null -D "$hdr.$i" -m 10 -X POST "${URL[switchboard]}/v1/chat/completions" \
      -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" \
      -d '{"model":"gpt-3.5-turbo","messages":[{"role":"user","content":"cache probe"}],"temperature":0}'
  done
  seen=$(sed -n 's/^x-switchboard-cache: *//Ip' "$hdr.2" | tr -d '\r')
  if [[ "$seen" != hit ]]; then
    local why="the 2nd identical request was not a cache hit (x-switchboard-cache: ${seen:-absent})"
    why+=" with this config: $(tr '\n' ' ' < "$config")"
    log "scenario 5 skipped: $why"
    printf 'RESULT %s\n' "$("$BENCH_PY" -c 'import json,sys; print(json.dumps({"skipped": sys.argv[1]}))' "$why")" \
      > "$OUT_DIR/raw/5-skip.txt"
    record 5 "c=$CACHE_CONC" switchboard 1 "$OUT_DIR/raw/5-skip.txt"
  else
    for ((rep = 1; rep <= REPEATS; rep++)); do for t in direct switchboard; do
      BENCH_COUNT_HEADER=x-switchboard-cache wrk_measure 5 "c=$CACHE_CONC" "$t" "$rep" "$CACHE_CONC" "$DURATION"
    done; done
  fi
  start_target switchboard   # back to the configuration the other scenarios use
}

scenario_6() {
  start_mock 0 0
  local t idle after
  for t in "${TARGETS[@]}"; do
    [[ $t == direct ]] && continue
    start_target "$t"
    sleep 2
    idle=$("$BENCH_PY" "$HERE/procmon.py" rss --pid "${PID[$t]}")
    measure 6 "memory" "$t" 1 -- loadgen count --url "${URL[$t]}" -c 16 --requests "$MEM_REQUESTS" \
      --max-seconds "$MEM_MAX_SECONDS"
    after=$("$BENCH_PY" "$HERE/procmon.py" rss --pid "${PID[$t]}")
    printf 'RESULT {"startup_s": %s, "rss_idle": %s, "rss_after": %s}\n' "$LAST_STARTUP" "$idle" "$after" \
      > "$OUT_DIR/raw/6-rss-$t.txt"
    record 6 "rss" "$t" 1 "$OUT_DIR/raw/6-rss-$t.txt"
    "$BENCH_PY" "$HERE/summarize.py" --line "$RESULTS" >&2
  done
}

deployments_config() { # N -> path of a config with N model_list entries, gpt-3.5-turbo last
  local n=$1 path=$OUT_DIR/switchboard-deployments-$1.yaml i
  local params="params: {model: openai/gpt-3.5-turbo, api_base: \"http://127.0.0.1:$MOCK_PORT/v1\", api_key: sk-bench}"
  {
    echo "model_list:"
    for ((i = 1; i < n; i++)); do echo "  - {model_name: bench-model-$i, $params}"; done
    echo "  - {model_name: gpt-3.5-turbo, $params}"
  } > "$path"
  echo "$path"
}

scenario_7() {
  start_mock 0 0
  local kb n rep t
  for kb in $BODY_KBS; do for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    measure 7 "body=${kb}KB" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" --body-kb "$kb" \
      --duration "$DURATION" --warmup "$WARMUP"
  done; done; done
  for n in $DEPLOYMENTS; do
    start_target switchboard "$(deployments_config "$n")"
    printf 'RESULT {"startup_s": %s}\n' "$LAST_STARTUP" > "$OUT_DIR/raw/7-startup-$n.txt"
    record 7 "deployments=$n startup" switchboard 1 "$OUT_DIR/raw/7-startup-$n.txt"
    for ((rep = 1; rep <= REPEATS; rep++)); do for t in direct switchboard; do
      measure 7 "deployments=$n" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" \
        --duration "$DURATION" --warmup "$WARMUP"
    done; done
  done
  start_target switchboard
}

embed_body() { # a 16-input batch for text-embedding-3-small, as a file
  local path=$OUT_DIR/embed-16.json
  "$BENCH_PY" -c 'import json, sys
texts = [f"Passage {i}: the quick brown fox jumps over the lazy dog, item {i}." for i in range(16)]
json.dump({"model": "text-embedding-3-small", "input": texts, "encoding_format": "float"}, open(sys.argv[1], "w"))' "$path"
  echo "$path"
}

embed_round() { # case-prefix targets...: c=1 latency and EMBED_CONC throughput for each target
  local prefix=$1 rep t; shift
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in "$@"; do
    measure 8 "${prefix}c=1" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" --path /v1/embeddings \
      --body-file "$EMBED_BODY" --duration "$DURATION" --warmup "$WARMUP"
  done; done
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in "$@"; do
    BENCH_PATH=/v1/embeddings BENCH_BODY_FILE=$EMBED_BODY BENCH_COUNT_HEADER=x-switchboard-cache \
      wrk_measure 8 "${prefix}c=$EMBED_CONC" "$t" "$rep" "$EMBED_CONC" "$DURATION"
  done; done
}

scenario_8() {
  start_mock 0 0
  EMBED_BODY=$(embed_body)
  local config=$OUT_DIR/switchboard-cache.yaml hdr=$OUT_DIR/raw/8-probe.headers i seen
  embed_round "" "${TARGETS[@]}"
  printf '%s\n' "$CACHE_CONFIG_YAML" > "$config"
  start_target switchboard "$config"
  for i in 1 2; do   # the same batch twice: the second must come whole from the cache
    curl -s -o /dev/null -D "$hdr.$i" -m 10 -X POST "${URL[switchboard]}/v1/embeddings" \
      -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" -d @"$EMBED_BODY"
  done
  seen=$(sed -n 's/^x-switchboard-cache: *//Ip' "$hdr.2" | tr -d '\r')
  if [[ "$seen" == hit ]]; then
    embed_round "cached " direct switchboard
  else
    log "scenario 8 cached rows skipped: the 2nd identical batch was x-switchboard-cache: ${seen:-absent}"
  fi
  start_target switchboard
}

scenario_tracing() {
  start_mock 0 0
  start_target switchboard+otel
  local rep t c=16
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in direct switchboard switchboard+otel; do
    measure tracing "c=1" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" --duration "$DURATION" --warmup "$WARMUP"
  done; done
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in direct switchboard switchboard+otel; do
    wrk_measure tracing "c=$c" "$t" "$rep" "$c" "$DURATION"
  done; done
  stop_group "${PID[switchboard+otel]}" 15; PID[switchboard+otel]=""
}

# start_stores : PostgreSQL and Redis on loopback for switchboard+keys-pg (1 when either
# is not installed). PostgreSQL runs as its own user when the bench runs as root.
start_stores() {
  local initdb postgres run_as=() dir=$OUT_DIR/stores
  initdb=$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1 || true)
  postgres=${initdb%initdb}postgres
  [[ -n "$initdb" && -x "$postgres" ]] && command -v redis-server > /dev/null || return 1
  mkdir -p "$dir/pgsock" "$dir/redis"
  if [[ $(id -u) == 0 ]]; then chown -R postgres: "$dir/pgsock" "$dir"; run_as=(runuser -u postgres --); fi
  "${run_as[@]}" "$initdb" -D "$dir/pgdata" -A trust -U switchboard > "$dir/initdb.log" 2>&1
  setsid "${run_as[@]}" "$postgres" -D "$dir/pgdata" -p "$PG_PORT" -k "$dir/pgsock" \
    -c listen_addresses=127.0.0.1 -c max_connections=200 > "$dir/postgres.log" 2>&1 < /dev/null &
  PID[postgres]=$!
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir/redis" > "$dir/redis.log" 2>&1 < /dev/null &
  PID[redis]=$!
  local deadline=$((SECONDS + 30))
  until "$ROOT/.venv/bin/python" -c 'import psycopg, sys; psycopg.connect(sys.argv[1], connect_timeout=2).close()' \
      "postgresql://switchboard@127.0.0.1:$PG_PORT/postgres" 2>/dev/null; do
    ((SECONDS < deadline)) || die "PostgreSQL did not start (see $dir/postgres.log)"
    sleep 0.2
  done
}

virtual_key() { # target -> a new key with rpm, tpm and a budget far above what the bench sends
  curl -s -m 10 -X POST "${URL[$1]}/key/generate" -H "Authorization: Bearer $BENCH_API_KEY" \
    -H 'Content-Type: application/json' \
    -d '{"alias": "bench", "rpm_limit": 100000000, "tpm_limit": 100000000000, "max_budget": 1000000}' \
    | "$BENCH_PY" -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}

scenario_keys() {
  start_mock 0 0
  local keyed=(switchboard+keys) unkeyed=() t rep
  declare -A KEY=()
  if start_stores; then keyed+=(switchboard+keys-pg)
  else log "scenario keys: PostgreSQL or redis-server not installed, SQLite only"; fi
  for t in "${keyed[@]}"; do start_target "$t"; KEY[$t]=$(virtual_key "$t"); done
  if [[ -n "${PID[switchboard+keys-pg]:-}" ]]; then
    # switchboard+pg: the PostgreSQL + Redis server called with the master key (no virtual
    # key), whose ledger is in PostgreSQL too: what the key alone costs there.
    unkeyed=(switchboard+pg); PID[switchboard+pg]=${PID[switchboard+keys-pg]}
    ln -sfn "$OUT_DIR/switchboard+keys-pg" "$OUT_DIR/switchboard+pg"
  fi
  for ((rep = 1; rep <= REPEATS; rep++)); do for t in direct switchboard "${keyed[@]}" "${unkeyed[@]}"; do
    BENCH_API_KEY=${KEY[$t]:-$BENCH_API_KEY} wrk_measure keys "c=$KEYS_CONC" "$t" "$rep" "$KEYS_CONC" "$DURATION"
  done; done
  PID[switchboard+pg]=""
  for t in "${keyed[@]}" postgres redis; do
    if [[ -n "${PID[$t]:-}" ]]; then stop_group "${PID[$t]}" 15; PID[$t]=""; fi
  done
}

# The Responses API: each case is a request body, and the mock endpoint `direct` is measured
# on with the body that endpoint speaks.
responses_bodies() {
  local ask='"Say hello in one short sentence."' system='"You are a helpful assistant."'
  printf '{"model":"gpt-3.5-turbo","input":%s,"instructions":%s,"max_output_tokens":32,"temperature":0,"store":false}' \
    "$ask" "$system" > "$OUT_DIR/responses-openai.json"
  printf '{"model":"claude-3-5-haiku-20241022","input":%s,"instructions":%s,"max_output_tokens":32,"temperature":0,"store":false}' \
    "$ask" "$system" > "$OUT_DIR/responses-anthropic.json"
  printf '{"model":"claude-3-5-haiku-20241022","system":%s,"messages":[{"role":"user","content":%s}],"max_tokens":32,"temperature":0}' \
    "$system" "$ask" > "$OUT_DIR/messages-anthropic.json"
  printf '{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":%s},{"role":"user","content":%s}],"max_tokens":32,"temperature":0}' \
    "$system" "$ask" > "$OUT_DIR/chat-openai.json"
}

scenario_9() {
  start_mock 0 0
  responses_bodies
  local case rep t body path conc
  for case in pass-through translated; do
    for conc in 1 $RESPONSES_CONC; do for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
      body=$OUT_DIR/responses-openai.json path=/v1/responses
      [[ $case == translated ]] && body=$OUT_DIR/responses-anthropic.json
      [[ $case == translated && $t == direct ]] && body=$OUT_DIR/messages-anthropic.json path=/v1/messages
      if ((conc == 1)); then
        measure 9 "$case c=1" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" --path "$path" \
          --body-file "$body" --duration "$DURATION" --warmup "$WARMUP"
      else
        BENCH_PATH=$path BENCH_BODY_FILE=$body wrk_measure 9 "$case c=$conc" "$t" "$rep" "$conc" "$DURATION"
      fi
    done; done; done
  done
}

# Scenario 10's faces: the path and the body of one request, the same system prompt and
# question in each format (the chat body is the one scenarios 1-2 send).
face_request() { # face -> "path body-file"
  case $1 in
    chat) echo "/v1/chat/completions $OUT_DIR/chat-openai.json" ;;
    pass-through) echo "/v1/messages $OUT_DIR/messages-anthropic.json" ;;
  esac
}

scenario_10() {
  start_mock 0 0
  responses_bodies
  local rep t conc face faces path body
  for conc in 1 $MESSAGES_CONC; do for ((rep = 1; rep <= REPEATS; rep++)); do for t in "${TARGETS[@]}"; do
    faces="chat pass-through"; ((rep % 2)) || faces="pass-through chat"   # each first in turn
    for face in $faces; do
      read -r path body <<< "$(face_request "$face")"
      if ((conc == 1)); then
        measure 10 "$face c=1" "$t" "$rep" -- loadgen latency --url "${URL[$t]}" \
          --path "$path" --body-file "$body" --duration "$DURATION" --warmup "$WARMUP"
      else
        BENCH_PATH=$path BENCH_BODY_FILE=$body wrk_measure 10 "$face c=$conc" "$t" "$rep" "$conc" "$DURATION"
      fi
    done
  done; done; done
}
