# Switchboard: `make run` starts the proxy on :5000, `make test` runs the whole suite.
# Both create the virtualenv (.venv) and install what they need on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# Servers and tools the test suite runs for real (Debian package: command it provides).
TEST_SYSTEM_PACKAGES := redis-server:redis-server postgresql:initdb chromium:chromium

.PHONY: venv run test test-servers test-clients bench bench-quick bench-profile bench-cache bench-clients

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

run: venv
	$(VENV)/bin/gunicorn -c gunicorn.conf.py

# Installs the servers the tests need when they are missing (as root, from Debian's
# packages); without root the tests that need them are skipped with the reason.
test-servers:
	@missing=""; for pair in $(TEST_SYSTEM_PACKAGES); do \
	  pkg=$${pair%%:*}; cmd=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/$$cmd >/dev/null 2>&1 \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: install$$missing for the full suite"; fi; \
	fi

# Real clients the tests drive (package.json: Codex CLI, Claude Code), installed with npm into
# ./node_modules; without Node the tests that need them are skipped with the reason.
test-clients: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the tests that run Node clients (Codex CLI, Claude Code) are skipped"; fi

test: venv test-servers test-clients
	$(PY) -m pytest -n 2 --dist loadfile

# Benchmark vs direct and LiteLLM (bench/README.md); installs what it needs. Knobs via env:
# DURATION, REPEATS, SCENARIOS, PEER=none, BENCH_QUICK=1 (= `make bench-quick`, ~3 min).
bench:
	bench/run.sh

bench-quick:
	BENCH_QUICK=1 bench/run.sh

bench-profile:
	bench/profile.sh

# CPU per upstream call: the proxy's libcurl Transport against urllib3 and requests.
bench-clients: venv
	bench/clients.sh

# Response cache: semantic precision/recall on bench/data/semantic_pairs.jsonl and lookup
# latency at 1k/10k/100k entries, then exact-hit throughput through gunicorn against the
# upstream called directly (scenario 5 of bench/run.sh, on a throw-away cache folder).
bench-cache: venv
	$(PY) bench/cache_bench.py
	folder=$$(mktemp -d) && \
	PEER=none SCENARIOS=5 CACHE_CONFIG_YAML="$$(printf 'cache:\n  enabled: true\n  dir: %s' "$$folder")" \
	  bench/run.sh; status=$$?; rm -rf "$$folder"; exit $$status
