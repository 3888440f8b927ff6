# Two commands matter: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MLOPS := $(VENV)/bin/mlops

.PHONY: demo test test-full quick setup setup-dev engine sandbox test-tools lint typecheck bench docs clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

## The whole pipeline on the example models, on this machine's processes (no Jenkins, no Docker needed).
demo: setup sandbox
	$(MLOPS) run models/ --runtime local
	$(MLOPS) history

## Everything the tests need (a Docker engine and the training images included), then every test but those
## tests/support/tiers.py leaves to test-full (marker full), for time: what CI runs.
test: setup-dev engine sandbox test-tools lint typecheck
	$(PY) -m pytest -q -ra -n 2 --dist loadgroup -m "not full" --durations=25

## The rest of the suite (marker full): the corpora's other pairs, second runtimes, the cluster drills.
test-full: setup-dev engine sandbox test-tools
	$(PY) -m pytest -q -ra -n 2 --dist loadgroup -m full --durations=25

## The loop to run on every change: lint, types, and the tests that train nothing and need no engine (about 1 min).
quick: setup-dev sandbox lint typecheck
	$(PY) -m pytest -q -n 2 -m "not slow and not docker"

engine:
	bash scripts/docker-setup.sh

# bubblewrap for the local runtime's sandbox, and the cloud metadata address closed to trials.
sandbox:
	bash scripts/sandbox-setup.sh

# Chromium renders the report in its test; npm-groovy-lint lints the Jenkinsfile (needs Java and Node.js).
test-tools: .tools/node_modules/.bin/npm-groovy-lint
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	command -v openssl >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null)

.tools/node_modules/.bin/npm-groovy-lint:
	npm install --silent --prefix .tools --no-audit --no-fund npm-groovy-lint@15

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The core and the harness strictly; the layers above with every function body checked.
typecheck: setup-dev
	$(VENV)/bin/mypy --strict mlops mlops_harness
	$(VENV)/bin/mypy --strict tweak monitor jobs

bench: setup-dev engine sandbox
	$(PY) -m pip install --quiet -r requirements-bench.txt
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# docs/configuration.md from the Settings definition (tests/test_docs.py fails when it is out of date).
docs: setup
	$(PY) -m jobs.config_doc > docs/configuration.md

clean:
	rm -rf .mlops .pytest_cache
