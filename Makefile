# CRM Lens — `make help` lists every target. The two you need: `make run` and `make test`.
# Each target installs what it needs (idempotent): the venv in .venv/ from requirements.lock,
# the Jupyter kernel "crmlens", and (for tests) Debian packages.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
STAMP := $(VENV)/.installed
DEMO_SCALE ?= default
DEMO_SEED ?= 7
DEMO_DIR := data/demo
TEST_DEMO_DIR := outputs/.test-demo
APT_PACKAGES := postgresql chromium fonts-noto-cjk
APT_RUN_PACKAGES := chromium fonts-noto-cjk
RUN_ARGS ?=
DASHBOARD_ARGS ?=
PYTEST_ARGS ?=
# Python writes a module's bytecode when it first imports it (only the modules used), instead of the install
# compiling all ~16,000 files of the environment up front (35 s of a fresh `make test` on 2 cores); an
# environment that forbids writing bytecode would make every kernel compile its imports again
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help setup run run-deps test demo validate dashboard lab lint format docs bench system-deps lock plotly-bundle clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else f"Python 3.11 is needed; {sys.executable} is {v[0]}.{v[1]}")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name crmlens --display-name "CRM Lens (.venv)" >/dev/null
	@# the notebooks' git filter; then refresh git's index once, so `git status` (which `crmlens run` records)
	@# does not run the filter over every notebook on each call in a fresh clone
	@if [ -d .git ]; then $(BIN)/nbstripout --install 2>/dev/null && git update-index -q --refresh >/dev/null 2>&1; true; fi
	@touch $(STAMP)

setup: $(STAMP) ## create .venv from the lock file and register the Jupyter kernel (idempotent)

$(DEMO_DIR)/opportunities.parquet: | $(STAMP)
	$(BIN)/crmlens demo --scale $(DEMO_SCALE) --seed $(DEMO_SEED) --out $(DEMO_DIR)

demo: $(STAMP) ## (re)generate the demo data in data/demo (DEMO_SCALE=tiny|small|default|large, DEMO_SEED=7)
	$(BIN)/crmlens demo --scale $(DEMO_SCALE) --seed $(DEMO_SEED) --out $(DEMO_DIR)

run: $(STAMP) run-deps $(DEMO_DIR)/opportunities.parquet ## set up, generate demo data if missing, run the workbook, print where results are
	$(BIN)/crmlens run $(RUN_ARGS)

validate: $(STAMP) $(DEMO_DIR)/opportunities.parquet ## validate the demo data (or SOURCE=... MAPPING=...)
	$(BIN)/crmlens validate --source $(or $(SOURCE),$(DEMO_DIR)) $(if $(MAPPING),--mapping $(MAPPING))

run-deps: ## install the Debian packages the run's exports need (Chromium: PDF, chart images; a CJK font for 中文) if missing
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(APT_RUN_PACKAGES)"

system-deps: ## install the Debian packages the tests need (PostgreSQL, Chromium) if missing
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(TEST_DEMO_DIR)/opportunities.parquet: | $(STAMP)
	$(BIN)/crmlens demo --scale tiny --seed 7 --out $(TEST_DEMO_DIR)

test: $(STAMP) system-deps $(TEST_DEMO_DIR)/opportunities.parquet ## install everything the tests need, lint, and run the test suite
	$(BIN)/ruff check lib tests bench
	$(BIN)/crmlens docs --check
	@# the committed notebooks, as they are (default parameters: region all), on the tiny demo (nbval: they run
	@# without error, and every headline KPI has a value: CRMLENS_STRICT_KPIS; the suite's notebook matrix runs
	@# every other region), in the background while the suite runs (one kernel at a time, its own data and
	@# store); the dashboards' notebooks are executed by the browser tests, in Voila, as viewers open them
	@mkdir -p outputs; CRMLENS_DEMO_DIR=$(abspath $(TEST_DEMO_DIR)) CRMLENS_STRICT_KPIS=1 \
	$(BIN)/python -m pytest --nbval-lax -q -p no:cacheprovider notebooks/ --ignore=notebooks/dashboards \
	  > outputs/.nbval.log 2>&1 & \
	nbval=$$!; $(BIN)/python -m pytest -n 2 --dist worksteal --durations=25 $(PYTEST_ARGS); rc=$$?; \
	wait $$nbval; nrc=$$?; echo "--- nbval (the committed notebooks on the tiny demo)"; cat outputs/.nbval.log; \
	if [ $$rc -ne 0 ]; then exit $$rc; fi; exit $$nrc

dashboard: $(STAMP) $(DEMO_DIR)/opportunities.parquet ## serve the Voila dashboards on 127.0.0.1:8866 (DASHBOARD_ARGS="--host 0.0.0.0" to share, with a token)
	$(BIN)/crmlens dashboard $(DASHBOARD_ARGS)

lab: $(STAMP) ## start JupyterLab on 127.0.0.1 with the project's kernel
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=.

lint: $(STAMP) ## ruff lint
	$(BIN)/ruff check lib tests bench

format: $(STAMP) ## ruff format + autofix
	$(BIN)/ruff check --fix lib tests bench

docs: $(STAMP) ## regenerate docs/data_model.md and docs/parameters.md from the code
	$(BIN)/crmlens docs

bench: $(STAMP) run-deps $(DEMO_DIR)/opportunities.parquet ## run the benchmarks (slow; not part of make test)
	$(BIN)/python bench/bench_demo.py
	$(BIN)/python bench/bench_run.py --exports
	$(BIN)/python bench/bench_dashboard.py
	$(BIN)/python bench/bench_plotlyjs.py
	$(BIN)/python bench/bench_market.py
	$(BIN)/python bench/bench_scale.py --data default

lock: ## re-resolve requirements.lock from pyproject.toml (after changing dependencies)
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --no-header --quiet --no-emit-package rfc3987-syntax --no-emit-package lark -o requirements.lock

plotly-bundle: ## rebuild the committed plotly.js bundle of the charts' trace types (needs node and npm; after upgrading plotly)
	cd tools/plotly-bundle && npm ci --no-audit --no-fund && node build.mjs

clean: ## remove the venv, outputs and generated demo data
	rm -rf $(VENV) outputs/* data/demo .pytest_cache .ruff_cache
