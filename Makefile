# The two commands of the quick start are `make run` and `make test`; both create .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
NODE_OP := tests/upstreams/node
# The SSO tests' OpenID provider runs on Node; without npm the step is left out and the tests
# themselves skip (or fail under CI=true).
NODE_DEPS := $(if $(shell command -v npm 2>/dev/null),$(NODE_OP)/node_modules/.package-lock.json)

.PHONY: run test lint types bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# npm ci rewrites node_modules/.package-lock.json, so it is newer than the lock once installed.
$(NODE_OP)/node_modules/.package-lock.json: $(NODE_OP)/package-lock.json
	npm ci --no-audit --no-fund --prefix $(NODE_OP)

run: $(VENV)/.installed
	$(BIN)/idp migrate
	$(BIN)/idp serve --host $(HOST) --port $(PORT)

test: $(VENV)/.test-installed $(NODE_DEPS)
	$(BIN)/pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(VENV)/.test-installed
	$(BIN)/mypy

# Starts every subject on loopback and writes bench/results/; never part of `make test`.
# BENCH_QUICK=1 is the short smoke mode; BENCH_ARGS passes options (python -m bench --help).
bench: $(VENV)/.installed
	$(BIN)/python bench/signing.py
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(NODE_OP)/node_modules
