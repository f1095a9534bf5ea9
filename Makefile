# ecs-canary: set-up, checks, tests, demo and bench.
#
#   make test    every static check (lint) and every test; installs what it needs first
#   make demo    the offline demo (DEMO_ARGS="..." is passed to `ecs-canary demo`)
#   make lint    static checks only        make bench   the benchmark (BENCH_ARGS="...")
#   make faults  the full fault matrix (FAULTS_ARGS="..."; about 20 minutes)
#   make install set-up only               make clean   build output and caches
#
# Set-up is idempotent: the venv is re-installed only when pyproject.toml changes, node_modules
# only when package-lock.json changes, and `sam build` re-runs only when its inputs change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory
.DELETE_ON_ERROR:

# python3 here is pyenv's default, 3.11; the venv must be >= 3.11 (requires-python).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SAM_BUILD_DIR := .aws-sam/build
SAM_STAMP := .aws-sam/.built
# The functions' runtime: `sam build` runs this interpreter to install functions/requirements.txt.
LAMBDA_PYTHON := python3.13

DEMO_ARGS ?=
BENCH_ARGS ?=
FAULTS_ARGS ?=
PYTEST_ARGS ?=

export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# What `sam build` packages; a change to any of these re-runs it.
SAM_INPUTS := template.yaml $(wildcard statemachine/*.json) \
	$(shell find functions -type f ! -name '*.pyc' ! -path '*/__pycache__/*' 2>/dev/null)

# The static checks, in order. Each one is a `check-<name>` target below.
CHECKS := ruff format mypy cfn-lint sam-validate asl sam-build

# $(call say,text) prints a step header (bold on a terminal); write a comma as $(comma).
comma := ,
say = if [[ -t 1 && -z "$${NO_COLOR:-}" ]]; then printf '\033[1m==> %s\033[0m\n' "$(1)"; \
	else printf '==> %s\n' "$(1)"; fi

# Run every named check-<name> target even when one fails, then report the failures together.
define run_checks
failed=(); \
for check in $(1); do \
	$(MAKE) check-$$check || failed+=("$$check"); \
done; \
if (( $${#failed[@]} )); then \
	echo "FAILED: $${failed[*]}"; exit 1; \
fi; \
echo "OK: $(strip $(1))"
endef

.PHONY: help install venv node lint test pytest demo bench faults build clean distclean $(addprefix check-,$(CHECKS)) check-pytest

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

# ---------------------------------------------------------------------------------------------
# Set-up

install: venv node

venv: $(PY_STAMP)

$(BIN)/python:
	@$(call say,creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version 2>&1)))
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "$(PYTHON) is older than 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(PY_STAMP): pyproject.toml | $(BIN)/python
	@$(call say,pip install -e .[local$(comma)dev] (a few minutes on a fresh machine))
	$(BIN)/python -m pip install --quiet --editable ".[local,dev]"
	@touch $@

node: $(NODE_STAMP)

$(NODE_STAMP): package-lock.json package.json
	@$(call say,npm ci (asl-validator))
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ---------------------------------------------------------------------------------------------
# Static checks

lint: install
	@$(call run_checks,$(CHECKS))

check-ruff: $(PY_STAMP)
	@$(call say,ruff check)
	@$(BIN)/ruff check .

check-format: $(PY_STAMP)
	@$(call say,ruff format --check)
	@$(BIN)/ruff format --check .

# mypy functions cli tests, split where pytest's import mode gives two test modules one name
# (e.g. two conftest.py): see scripts/run_mypy.py.
check-mypy: $(PY_STAMP)
	@$(call say,mypy (strict))
	@$(BIN)/python scripts/run_mypy.py functions cli scripts/check_asl.py scripts/run_mypy.py

check-cfn-lint: $(PY_STAMP)
	@$(call say,cfn-lint template.yaml)
	@$(BIN)/cfn-lint template.yaml && echo "template.yaml: no findings"

check-sam-validate: $(PY_STAMP)
	@$(call say,sam validate --lint)
	@$(BIN)/sam validate --lint --template-file template.yaml

check-asl: $(PY_STAMP) $(NODE_STAMP)
	@$(call say,asl-validator statemachine/*.asl.json)
	@$(BIN)/python scripts/check_asl.py

check-sam-build build: $(SAM_STAMP)
	@echo "sam build: $(SAM_BUILD_DIR) is up to date with template.yaml and functions/"

# sam build needs $(LAMBDA_PYTHON) on PATH. Under pyenv the shim for it exists but fails unless
# that version is active, so when it does not run, put pyenv's newest installed 3.13 first on PATH
# (for this command only). The full log goes to .aws-sam/build.log; it is shown on failure.
$(SAM_STAMP): $(SAM_INPUTS) | $(PY_STAMP)
	@$(call say,sam build (runtime $(LAMBDA_PYTHON); log in .aws-sam/build.log))
	@mkdir -p .aws-sam
	@if ! $(LAMBDA_PYTHON) -c '' >/dev/null 2>&1; then \
		version=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | sort -V | tail -n 1 || true); \
		if [[ -z "$$version" ]]; then \
			echo "sam build needs $(LAMBDA_PYTHON) on PATH (the functions' runtime); install it" \
				"(e.g. pyenv install 3.13) and re-run" >&2; \
			exit 1; \
		fi; \
		export PATH="$$(pyenv prefix "$$version")/bin:$$PATH"; \
		echo "using $(LAMBDA_PYTHON) from pyenv $$version"; \
	fi; \
	if $(BIN)/sam build --cached --build-dir $(SAM_BUILD_DIR) --template-file template.yaml \
		>.aws-sam/build.log 2>&1; then \
		echo "built into $(SAM_BUILD_DIR)"; \
	else \
		cat .aws-sam/build.log; exit 1; \
	fi
	@touch $@

# ---------------------------------------------------------------------------------------------
# Tests, demo, bench

# Every static check and every test; pytest runs even when a check failed, so one run shows all.
test: install
	@$(call run_checks,$(CHECKS) pytest)

# The emulator patches moto process-wide and keeps a background evaluator running, so the suites
# that use it run in their own pytest processes, apart from the plain in-process moto tests.
PYTEST_SUITES := "tests/unit tests/static tests/handlers tests/cli" "tests/fuzz" "tests/emulator" "tests/e2e" \
	"tests/faults"

check-pytest pytest: $(PY_STAMP) $(NODE_STAMP)
	@failed=(); \
	for suite in $(PYTEST_SUITES); do \
		$(call say,pytest $$suite); \
		$(BIN)/pytest $$suite $(PYTEST_ARGS) || failed+=("$$suite"); \
	done; \
	if (( $${#failed[@]} )); then echo "FAILED pytest suites: $${failed[*]}"; exit 1; fi

demo: $(PY_STAMP)
	$(BIN)/ecs-canary demo $(DEMO_ARGS)

bench: $(PY_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

faults: $(PY_STAMP)
	$(BIN)/python tests/faults/matrix.py --out .bench/faults.json $(FAULTS_ARGS)

# ---------------------------------------------------------------------------------------------
# Clean-up

# Build output and caches (not .bench/ results). `make distclean` also removes the venv and
# node_modules.
clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV) node_modules
