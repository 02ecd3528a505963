# The front door: `make train` and `make test` set up .venv on first use, each installing only what it runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per set of things installed: the package (what training, evaluation and serving need); the
# test, lint and docs tools with the optional extras; the documentation tools alone; the browser page's npm
# packages; and the system packages the tests use (Chromium, PostgreSQL, fonts).
PACKAGE_STAMP := $(VENV)/.installed-package
DEV_STAMP := $(VENV)/.installed-dev
DOCS_STAMP := $(VENV)/.installed-docs
WEB_STAMP := web/node_modules/.installed
TEST_SYSTEM_STAMP := $(VENV)/.installed-test-system

.PHONY: setup browser postgres fonts train evaluate figures demo serve tune gpu-check gpu-check-cpu test test-fast test-unit lint \
	docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(PACKAGE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[dev]"
	touch $@

$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[docs]"
	touch $@

# onnxruntime-web for the browser page, from the npm registry as pinned in web/package-lock.json (npm ci
# empties node_modules first, so the stamp is written after it).
$(WEB_STAMP): web/package-lock.json
	npm ci --prefix web --no-audit --no-fund
	touch $@

$(TEST_SYSTEM_STAMP): Makefile | $(BIN)/python
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || $(MAKE) browser
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || $(MAKE) postgres
	dpkg-query -W $(FONT_PACKAGES) >/dev/null 2>&1 || $(MAKE) fonts
	touch $@

# Debian's Chromium and ChromeDriver for tests/test_web.py (never a browser download). Where apt-get cannot
# run (no root, not Debian), the browser test is skipped and says why.
browser:
	-apt-get install -y chromium chromium-driver || (apt-get update && apt-get install -y chromium chromium-driver)

# Debian's PostgreSQL server for the test of two `tune` workers on one database (tests/test_tune.py starts a
# throwaway cluster of its own; nothing runs as a service). Skipped with a reason where it cannot be installed.
postgres:
	-apt-get install -y postgresql || (apt-get update && apt-get install -y postgresql)

# Debian's font packages that lightning_digits/evaluation/rendered.py draws its out-of-distribution digits from
# (handwriting-like hands and common faces; Hershey's stroke fonts, drawn with the browser page's pen) for
# tests/test_rendered.py and bench/robustness.py. Where apt-get cannot run, those tests are skipped and say why.
FONT_PACKAGES := fonts-bwht fonts-dkg-handwriting fonts-comic-neue fonts-dancingscript fonts-dejavu-core \
	fonts-liberation fonts-ecolier-court fonts-breip fonts-humor-sans fonts-kaushanscript hershey-fonts-data
fonts:
	-apt-get install -y $(FONT_PACKAGES) || (apt-get update && apt-get install -y $(FONT_PACKAGES))

# Everything the tests need: the package with every extra, the page's npm packages, the system packages.
setup: $(DEV_STAMP) $(WEB_STAMP) $(TEST_SYSTEM_STAMP)

train: $(PACKAGE_STAMP)
	$(BIN)/lightning-digits fit

# The reports, then the README and docs tables that artifacts_digits/summary.json holds.
evaluate: $(PACKAGE_STAMP)
	$(BIN)/lightning-digits evaluate
	$(BIN)/python tools/render_figures.py

# Rewrite the README and docs tables rendered from JSON (tests/test_docs.py fails when they differ).
figures:
	$(PYTHON) tools/render_figures.py

demo: $(PACKAGE_STAMP) $(WEB_STAMP)
	$(BIN)/lightning-digits demo

serve: $(PACKAGE_STAMP)
	$(BIN)/lightning-digits serve

tune: $(PACKAGE_STAMP)
	$(BIN)/lightning-digits tune -c tune

# The first run on a machine with GPUs (every GPU; docs/distributed.md says what to send back), and the same rows
# in a reduced form on 2 CPU processes (tests/test_gpu_check.py runs that one).
gpu-check: $(PACKAGE_STAMP)
	$(BIN)/python bench/gpu_check.py

gpu-check-cpu: $(PACKAGE_STAMP)
	$(BIN)/python bench/gpu_check.py --cpu

# Two pytest workers: the slow tests first, each file with dear module fixtures kept on one worker and every other
# test handed out on its own (tests/conftest.py), so that both cores stay busy to the end (docs/benchmarks.md).
PYTEST := $(BIN)/python -m pytest -q -n 2 --no-loadscope-reorder

test: setup
	$(PYTEST)

# The edit loop: everything but the tests marked slow (kills, DDP, real-MNIST fits, the browser, and the checks
# that start a process per case: errors as the whole program prints them, imports per command, full-disk writers).
test-fast: setup
	$(PYTEST) -m "not slow"

# After every edit: the pure functions' tests (marked unit: no process, no fit, no server), in one process, in
# seconds; only the files that hold such tests are collected.
test-unit: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m unit $(shell grep -l 'mark.unit' tests/test_*.py)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The documentation site into site/ (tests/test_docs.py builds it with --strict too).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache site
