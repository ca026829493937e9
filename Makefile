# Tooling is the Makefile: run | test | lint | bench. Each target installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration bench services install clean docs audit

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

services:
	bash scripts/ensure-services.sh

## make run: the relay end to end on the embedded defaults (local RabbitMQ, in-process
## MsgFlash and Tether sandboxes, SQLite state); sends a demo WhatsApp message and a demo Tether
## SMS campaign and prints their events.
run: install services
	RELAY_SANDBOX=1 RELAY_LOG_FORMAT=$${RELAY_LOG_FORMAT:-console} $(BIN)/msgflash-relay run --demo

## make test: lint, types, then the whole suite against real RabbitMQ, Redis and the sandbox.
test: install services lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check service consumers
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest -q tests/unit

bench: $(BENCH_STAMP) services
	$(BIN)/python -m benchmarks

## make audit: known vulnerabilities in the installed dependencies (pip-audit). It asks the
## PyPI/OSV advisory database, so it needs the network: a release step, not part of make test.
audit: install
	$(BIN)/pip-audit --strict --progress-spinner off --skip-editable

docs: install
	$(BIN)/msgflash-relay asyncapi > docs/asyncapi.json
	$(BIN)/msgflash-relay openapi > docs/openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis relay-state.db*
