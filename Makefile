# Developer entry points. `make test` and `make demo` set everything up on first use:
# they create .venv with the pinned tools from pyproject.toml (no root, no Docker, no AWS account).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEMPLATES := template.yaml $(wildcard nested/*.yaml)

export PATH := $(abspath $(BIN)):$(PATH)
export SAM_CLI_TELEMETRY := 0
export BC_SKIP_MAPPING := TRUE

.PHONY: help setup test lint cfn-lint checkov pytest build demo clean

help:
	@echo "make test   - set up .venv, then run every gate and test (what CI runs)"
	@echo "make demo   - set up .venv, then run the project's main job locally"
	@echo "make build  - sam build (python3.13/arm64 artifacts, no Docker needed)"

$(STAMP): pyproject.toml $(wildcard functions/*/__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make: Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(STAMP)

# The gates run in this order; the first failure stops the run.
test: setup
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory cfn-lint
	$(MAKE) --no-print-directory checkov
	$(MAKE) --no-print-directory pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# cfn-lint does not descend into nested templates, so every file is linted on its own.
cfn-lint: setup
	$(BIN)/cfn-lint $(TEMPLATES)

checkov: setup
	$(BIN)/checkov --framework cloudformation --skip-download --quiet --compact \
		$(addprefix -f ,$(TEMPLATES))

pytest: setup
	$(BIN)/pytest

build: setup
	$(BIN)/sam build

# Until the local demo exists: build the application and check the network stack renders right.
demo: build
	$(BIN)/pytest -q tests/templates/test_network_template.py

clean:
	rm -rf .aws-sam build dist .pytest_cache .ruff_cache
