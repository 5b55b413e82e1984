# Every target sets itself up: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster
# The Dagster instance `tecl run` would use, with its dagster.yaml and storage; printed. The
# built-in demo market's is the `demo` folder of DAGSTER_HOME (README "Demo, paper and live").
DAGSTER_HOME_READY := $(BIN)/python -c 'from tecl_pipeline.app.cli import ensure_dagster_home; print(ensure_dagster_home())'

.PHONY: stack stack-down stack-status test-stack faketime install run test lint lint-infra browser format dev lock audit bench failure-report failure-docs soak replay clean

install: $(STAMP)

# Exact versions and hashes from the lock file; the project itself goes in without network.
# requirements/dev.lock is the runtime lock plus what tests and lint need (same versions).
$(STAMP): requirements/dev.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: install
	$(BIN)/tecl run

PY_SOURCES := tecl_pipeline tecl_pipeline_tests deploy bench

# The layer contracts are in pyproject.toml [tool.importlinter].
lint: install
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	$(BIN)/lint-imports
	$(BIN)/pyright

format: install
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

# The infrastructure code is linted like the Python (A7): cfn-lint ships its own resource
# specs, so this runs offline. Informational findings (-c I) fail it too.
lint-infra: install
	$(BIN)/cfn-lint --include-checks I -- deploy/cloudformation.yaml

# Debian's chromium for the browser UI test (tecl_pipeline_tests/defs/test_ui_browser.py), which
# Playwright drives via executable_path (never `playwright install`). Best effort: without apt
# or a reachable archive this only warns, and that test skips.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed; the browser test will skip"; }

# The coverage gate (R7): line coverage of tecl_pipeline, subprocesses included (the `tecl`
# CLI, the simulator), must be at least 90%; config in pyproject.toml [tool.coverage.*].
# `dg check defs` first: a code location that does not load fails in seconds, not after the
# suite. On the instance `tecl run` sets up (no telemetry), like `make dev`.
# Workers (pytest-xdist) take whole modules, so a module's fixtures are built once; most of
# the suite waits on servers and `tecl` processes, hence more workers than cores. Bytecode
# is cached even where the environment says not to: otherwise every worker rewrites every
# test module and every `tecl` process compiles the package anew.
TEST_WORKERS ?= 4
TEST_START := $(shell date +%s)
test: lint lint-infra browser
	home="$$($(DAGSTER_HOME_READY))" && DAGSTER_HOME="$$home" $(BIN)/dg check defs
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --cov=tecl_pipeline --cov-report=term:skip-covered --cov-fail-under=90 --durations=25
	@echo "make test: $$(( $$(date +%s) - $(TEST_START) )) s wall"

dev: install
	home="$$($(DAGSTER_HOME_READY))" && DAGSTER_HOME="$$home" $(BIN)/dg dev

# Re-resolve both lock files (needs the package index); `make install` never does this. The
# dev lock is resolved under the runtime one, so the two agree on every shared version.
lock: install
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -o requirements/runtime.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -c requirements/runtime.lock -o requirements/dev.lock

# The chaos soak (see README "Failure modes"): 1,000 sessions through the pipeline with faults
# drawn from the seed at every layer; prints one line of figures, fails on any duplicate order,
# lost journal record or broken invariant. `make test` runs 50 of them (two halves side by side).
SOAK_SEED ?= 20261125
SOAK_SESSIONS ?= 1000
SOAK_FAULT_RATE ?= 0.1
soak: install
	$(BIN)/tecl soak --sessions $(SOAK_SESSIONS) --seed $(SOAK_SEED) --fault-rate $(SOAK_FAULT_RATE)

# Every session from 2021-11-29 to 2026-07-31 of ../shared/data/market through the pipeline,
# checked against signal_history and the reviewed baseline (`make test` replays the first 60).
# After a reviewed change of the figures: make replay REPLAY_FLAGS=--write-baseline
MARKET_DATA ?= $(CURDIR)/../shared/data/market
replay: install
	$(BIN)/tecl replay --data-dir $(MARKET_DATA) --baseline tecl_pipeline_tests/harness/replay_baseline.json $(REPLAY_FLAGS)

# Speed and memory against their targets (medians over repeated runs; see README
# "Performance"): prints a table, writes bench/results.json, fails if a target is missed.
# The stack's benchmarks start a stack of their own: with `make stack` running, stop it first.
bench: install
	PYTHONPATH=$(CURDIR) $(BIN)/python bench/run.py

# Vulnerability scan of the locked set (C7, S6). Not part of `test`: it needs PyPI's JSON
# API, which these machines cannot reach. Exit 0 clean, 1 vulnerabilities, 3 the audit could
# NOT be performed (never reported as clean); see deploy/audit.py. .ci/run runs it with
# AUDIT_FLAGS=--allow-not-performed: vulnerabilities fail CI, an unreachable database is shown.
audit: install
	$(BIN)/python deploy/audit.py --requirements requirements/dev.lock --pip-audit $(BIN)/pip-audit $(AUDIT_FLAGS)

# Runs the tests that tecl_pipeline_tests/failure_modes/matrix.yaml maps to each failure mode
# of docs/failure-modes.md, then prints ID | failure mode | result | tests; fails unless
# every failure mode passes.
failure-report: install
	$(BIN)/python -m tecl_pipeline_tests.failure_modes.report

# Rewrites the "Tested by" section of docs/failure-modes.md from matrix.yaml (after an edit
# there; test_failure_doc.py fails until it is run).
failure-docs: install
	$(BIN)/python -m tecl_pipeline_tests.failure_modes.failure_doc

# The production stack of deploy/docker/compose.yaml (PostgreSQL, code server, webserver,
# daemon) as local processes, with the broker simulator unless deploy/docker/.env says
# otherwise: returns once every service is healthy and prints where each listens. State,
# database and logs under .stack/ (README "Run it every day"). Installs Debian's
# postgresql with apt-get if it is missing.
stack: install
	$(BIN)/python -m deploy.stack up

stack-status: install
	$(BIN)/python -m deploy.stack status

stack-down: install
	$(BIN)/python -m deploy.stack down

# Debian's faketime: the stack's tests run the daemon a minute before a decision time.
faketime:
	@command -v faketime >/dev/null || { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }

# The tests on the running stack (tecl_pipeline_tests/stack/), after `make stack`.
test-stack: install browser faketime
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -m stack -p no:cacheprovider tecl_pipeline_tests/stack --durations=10

clean: stack-down
	rm -rf .stack
	rm -rf $(VENV) .dagster .tecl .pytest_cache .ruff_cache .hypothesis .coverage .coverage.* .import_linter_cache .grimp_cache
