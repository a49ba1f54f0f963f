#!/usr/bin/env bash
# Run the peer, LiteLLM (1.91.1 from $PEER_VENV), in the foreground; exec, so the caller's PID
# is its main process. Three models pointing at the mock (gpt-3.5-turbo, text-embedding-3-small,
# and an Anthropic one for scenario 9's translation and scenario 10's /v1/messages); no database; the client
# key is checked in memory against the master key. Env: PEER_PORT, MOCK_PORT, RUN_DIR,
# PEER_VENV [/tmp/peer-venv-old], PEER_WORKERS [2], BENCH_API_KEY [sk-bench].
set -euo pipefail
: "${PEER_PORT:?}" "${MOCK_PORT:?}" "${RUN_DIR:?}"
mkdir -p "$RUN_DIR"
cat > "$RUN_DIR/litellm.yaml" <<YAML
model_list:
  - model_name: claude-3-5-haiku-20241022
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: http://127.0.0.1:$MOCK_PORT
      api_key: sk-bench-upstream
  - model_name: gpt-3.5-turbo
    litellm_params:
      model: openai/gpt-3.5-turbo
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-bench-upstream
  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: http://127.0.0.1:$MOCK_PORT/v1
      api_key: sk-bench-upstream
litellm_settings:
  request_timeout: 600
  set_verbose: false
  json_logs: true
  telemetry: false
general_settings: {}
YAML
export LITELLM_LOG=ERROR LITELLM_MODE=PRODUCTION LITELLM_LOCAL_MODEL_COST_MAP=True
export LITELLM_MASTER_KEY="${BENCH_API_KEY:-sk-bench}"
cd "$RUN_DIR"
exec "${PEER_VENV:-/tmp/peer-venv-old}/bin/litellm" --config "$RUN_DIR/litellm.yaml" \
  --host 127.0.0.1 --port "$PEER_PORT" --num_workers "${PEER_WORKERS:-2}"
