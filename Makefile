# Two commands on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= config/demo.yaml

.PHONY: run test bench bench-publish bench-tools lint typecheck check servers clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/payrouter serve --config $(CONFIG)

# Integration tests start their own redis-server and PostgreSQL processes (on
# free ports, in temporary folders), and promtool checks the alert rules;
# install the binaries when missing.
servers:
	@need=""; \
	command -v redis-server >/dev/null 2>&1 || need="$$need redis-server"; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	  || need="$$need postgresql"; \
	command -v promtool >/dev/null 2>&1 || need="$$need prometheus"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$need with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	  else echo "missing:$$need -- the tests that need them will fail (install them, or run as root)"; fi; \
	fi

test: $(STAMP) servers
	$(BIN)/python -m pytest -q -p no:cacheprovider

# A short run of every scenario (a few minutes); the report and plots land in
# benchmarks/out/ (ignored by git). bench-publish also copies them to
# benchmarks/results/, the figures the README shows.
# wrk drives the per-core scenario (a load generator in C leaves the shared
# core to the sandbox and Redis); without it the Python generator does.
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing wrk with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	  else echo "wrk is missing: the per-core scenario uses the Python load generator"; fi; }

bench: $(STAMP) servers bench-tools
	$(BIN)/python -m benchmarks.run --quick

bench-publish: $(STAMP) servers bench-tools
	$(BIN)/python -m benchmarks.run --publish

lint: $(STAMP)
	$(BIN)/ruff check router adapters tests benchmarks
	$(BIN)/ruff format --check router adapters tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info
