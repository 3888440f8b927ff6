# Two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MLOPS := $(VENV)/bin/mlops

.PHONY: demo test setup setup-dev engine test-tools lint bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

## The whole pipeline on the example models, on this machine's processes (no Jenkins, no Docker needed).
demo: setup
	$(MLOPS) run models/ --runtime local
	$(MLOPS) history

## Everything the tests need (a Docker engine and the training images included), then all the tests.
test: setup-dev engine test-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -ra

engine:
	bash scripts/docker-setup.sh

# Chromium renders the report in its test; npm-groovy-lint lints the Jenkinsfile (needs Java and Node.js).
test-tools: .tools/node_modules/.bin/npm-groovy-lint
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	command -v openssl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null)

.tools/node_modules/.bin/npm-groovy-lint:
	npm install --silent --prefix .tools --no-audit --no-fund npm-groovy-lint@15

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup-dev engine
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .mlops .pytest_cache
