#!/usr/bin/env bash
# Install what the benchmark needs, from nothing; each step is skipped when already done.
#   wrk + nginx with lua (Debian packages) for the load generator and the mock upstream,
#   a load-generator venv (aiohttp, uvloop, psutil, py-spy) in $BENCH_VENV,
#   the proxy's own venv via `make venv`,
#   LiteLLM 1.91.1 (the peer) in $PEER_VENV unless PEER=none.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
PEER=${PEER:-litellm}
PEER_VENV=${PEER_VENV:-/tmp/peer-venv-old}
LITELLM_VERSION=${LITELLM_VERSION:-1.91.1}

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v nginx >/dev/null || need_apt+=(nginx-light)
[[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] || need_apt+=(libnginx-mod-http-lua)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  if [[ $(id -u) == 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null \
      || log "WARN: apt-get failed; the mock falls back to aiohttp (MOCK_IMPL=aiohttp)"
  else
    log "WARN: not root, cannot apt-get install ${need_apt[*]}"
  fi
fi
command -v wrk >/dev/null || die "wrk is required (apt-get install wrk)"

if ! "$BENCH_PY" -c 'import aiohttp, uvloop, psutil' 2>/dev/null || [[ ! -x "$BENCH_VENV/bin/py-spy" ]]; then
  log "creating the load-generator venv $BENCH_VENV"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install -q aiohttp uvloop psutil py-spy
fi

log "make venv (the proxy's .venv)"
make -s -C "$HERE/.." venv

if [[ "$PEER" == litellm ]]; then
  installed=$("$PEER_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('litellm'))" \
    2>/dev/null || true)
  if [[ "$installed" != "$LITELLM_VERSION" ]]; then
    log "installing litellm[proxy]==$LITELLM_VERSION into $PEER_VENV (takes a few minutes)"
    python3 -m venv "$PEER_VENV"
    "$PEER_VENV/bin/pip" install -q --upgrade pip
    "$PEER_VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION"
  fi
fi
log "setup done"
