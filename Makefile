# Every target sets itself up: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster
export TECL_STATE_URI ?= file://$(CURDIR)/.tecl/state

.PHONY: install run test lint format dev lock clean

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

lint: install
	$(BIN)/ruff check tecl_pipeline tecl_pipeline_tests
	$(BIN)/ruff format --check tecl_pipeline tecl_pipeline_tests

format: install
	$(BIN)/ruff check --fix tecl_pipeline tecl_pipeline_tests
	$(BIN)/ruff format tecl_pipeline tecl_pipeline_tests

test: lint
	$(BIN)/python -m pytest

dev: install
	$(BIN)/python -c 'from tecl_pipeline.cli import ensure_dagster_home; ensure_dagster_home()'
	$(BIN)/dagster dev -w workspace.yaml

# Re-resolve the lock file (needs the package index); `make install` never does this.
lock: install
	$(BIN)/python -m pip install --quiet uv==0.13.8
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes --no-header -o requirements.lock

clean:
	rm -rf $(VENV) .dagster .tecl .pytest_cache .ruff_cache .hypothesis
