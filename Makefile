# Every target sets itself up: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster
export TECL_STATE_URI ?= file://$(CURDIR)/.tecl/state

.PHONY: install run test lint lint-infra browser format dev lock audit clean

install: $(STAMP)

# Exact versions and hashes from the lock file; the project itself goes in without network.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: install
	$(BIN)/tecl run

PY_SOURCES := tecl_pipeline tecl_pipeline_tests deploy

lint: install
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

format: install
	$(BIN)/ruff check --fix $(PY_SOURCES)
	$(BIN)/ruff format $(PY_SOURCES)

# The infrastructure code is linted like the Python (A7): cfn-lint ships its own resource
# specs, so this runs offline. Informational findings (-c I) fail it too.
lint-infra: install
	$(BIN)/cfn-lint --include-checks I -- deploy/cloudformation.yaml

# Debian's chromium for the browser UI test (tecl_pipeline_tests/test_ui_browser.py), which
# Playwright drives via executable_path (never `playwright install`). Best effort: without apt
# or a reachable archive this only warns, and that test skips.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium could not be installed; the browser test will skip"; }

test: lint lint-infra browser
	$(BIN)/python -m pytest

dev: install
	$(BIN)/python -c 'from tecl_pipeline.cli import ensure_dagster_home; ensure_dagster_home()'
	$(BIN)/dagster dev -w workspace.yaml

# Re-resolve the lock file (needs the package index); `make install` never does this.
lock: install
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements.lock

# Vulnerability scan of the locked set (C7, S6). Not part of `test`: it needs PyPI's JSON
# API, which these machines cannot reach. Exit 0 clean, 1 vulnerabilities, 3 the audit
# could NOT be performed (never reported as clean); see deploy/audit.py.
audit: install
	$(BIN)/python deploy/audit.py --requirements requirements.lock --pip-audit $(BIN)/pip-audit

clean:
	rm -rf $(VENV) .dagster .tecl .pytest_cache .ruff_cache .hypothesis
