# Two commands on a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CONFIG  ?= config/demo.yaml

.PHONY: run test bench lint typecheck check redis-server clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/payrouter serve --config $(CONFIG)

# Integration tests start their own redis-server processes; install the binary when missing.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server missing: Redis integration tests will be skipped"; fi; }

test: $(STAMP) redis-server
	$(BIN)/python -m pytest -q -p no:cacheprovider

# A short run of every scenario (under 2 minutes); figures land in benchmarks/results/.
bench: $(STAMP) redis-server
	$(BIN)/python -m benchmarks.run --quick --publish

lint: $(STAMP)
	$(BIN)/ruff check router adapters tests benchmarks
	$(BIN)/ruff format --check router adapters tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info
