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

.PHONY: help setup test lint cfn-lint checkov pytest build demo bench clean

help:
	@echo "make test   - set up .venv, then run every gate and test (what CI runs)"
	@echo "make demo   - set up .venv, then run the project's main job locally"
	@echo "make build  - sam build (python3.13/arm64 artifacts, no Docker needed)"
	@echo "make bench  - run the fleet simulator benchmark and write docs/benchmarks.md"
	@echo "make package BUCKET=.. REGION=..           - packaged template for 'Launch stack'"
	@echo "make publish REGION=.. VERSION=.. [DRY_RUN=1] - publish to the Serverless Application Repository"
	@echo "make sar-report - refresh docs/sar-compatibility.md"

$(STAMP): pyproject.toml $(wildcard functions/*/__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "make: Python 3.11+ is required (set PYTHON=...)")'
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
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

# The whole control loop on an emulated account: the real templates in moto, the real scaler
# handler, the Buildkite API emulator, a compressed workload (see python -m tools.demo --help).
# Two runs of the same workload: the default fleet, then a warm pool fleet (EnableWarmPool,
# WarmPoolMinSize 3: the workload opens with a burst, and a scaler-sized pool starts at its
# minimum) whose report compares its job waits with the first run's. About a minute each.
DEMO_DIR := build/demo
demo: build
	$(BIN)/python -m tools.demo --output-dir $(DEMO_DIR)/default \
		--summary-json $(DEMO_DIR)/default/summary.json
	$(BIN)/python -m tools.demo --warm-pool --warm-pool-min-size 3 --output-dir $(DEMO_DIR)/warm-pool \
		--summary-json $(DEMO_DIR)/warm-pool/summary.json \
		--compare-with $(DEMO_DIR)/default/summary.json

# The fleet simulator on seeded standard traces: the project's real policy against a model of
# the reference scaler; writes docs/benchmarks.md and its plots (about a minute on 2 cores).
bench: setup
	$(BIN)/python -m tools.simulate.bench

clean:
	rm -rf .aws-sam build dist .pytest_cache .ruff_cache

# --- Publishing and the no-SAR fallback --------------------------------------------------------
.PHONY: package publish sar-report

# CloudFormation "Launch stack" without SAR: sam build, upload the artifacts and nested
# templates to BUCKET (in REGION), write build/packaged.yaml, upload it, print the console link.
package: setup
	@test -n "$(BUCKET)" -a -n "$(REGION)" || { echo "usage: make package BUCKET=<s3-bucket> REGION=<region>" >&2; exit 2; }
	$(MAKE) --no-print-directory build
	mkdir -p build
	$(BIN)/sam package --template-file .aws-sam/build/template.yaml --s3-bucket "$(BUCKET)" \
		--s3-prefix buildkite-sam-fleet --output-template-file build/packaged.yaml --region "$(REGION)"
	$(BIN)/python -m tools.publish.launch_stack --bucket "$(BUCKET)" --region "$(REGION)" \
		--template build/packaged.yaml

# Publish to the Serverless Application Repository: the nested applications first, then the
# root that references them by ApplicationId. DRY_RUN=1 makes no AWS call: it writes the
# variants into build/publish/<VERSION>/ and prints the commands a real run executes.
publish: setup
	@test -n "$(REGION)" -a -n "$(VERSION)" || { echo "usage: make publish REGION=<region> VERSION=<x.y.z> BUCKET=<s3-bucket> [DRY_RUN=1] [PUBLIC=1] [PUBLISH_CONFIG=<file.toml>]" >&2; exit 2; }
	$(BIN)/python -m tools.publish --region "$(REGION)" --version "$(VERSION)" \
		$(if $(BUCKET),--bucket "$(BUCKET)") $(if $(DRY_RUN),--dry-run) $(if $(PUBLIC),--public) \
		$(if $(PUBLISH_CONFIG),--config "$(PUBLISH_CONFIG)")

# Refresh docs/sar-compatibility.md (`make test` fails while it is stale).
sar-report: setup
	$(BIN)/python -m tools.sar_check --output docs/sar-compatibility.md
