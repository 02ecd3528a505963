# The front door: `make train` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser postgres fonts train evaluate demo serve tune gpu-check gpu-check-cpu test test-fast lint clean

$(STAMP): pyproject.toml web/package-lock.json
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	npm ci --prefix web --no-audit --no-fund
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || $(MAKE) browser
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || $(MAKE) postgres
	dpkg-query -W $(FONT_PACKAGES) >/dev/null 2>&1 || $(MAKE) fonts
	touch $(STAMP)

# Debian's Chromium and ChromeDriver for tests/test_web.py (never a browser download). Where apt-get cannot
# run (no root, not Debian), the browser test is skipped and says why.
browser:
	-apt-get install -y chromium chromium-driver || (apt-get update && apt-get install -y chromium chromium-driver)

# Debian's PostgreSQL server for the test of two `tune` workers on one database (tests/test_tune.py starts a
# throwaway cluster of its own; nothing runs as a service). Skipped with a reason where it cannot be installed.
postgres:
	-apt-get install -y postgresql || (apt-get update && apt-get install -y postgresql)

# Debian's font packages that lightning_digits/data/rendered.py draws its out-of-distribution digits from
# (handwriting-like hands and common faces; Hershey's stroke fonts, drawn with the browser page's pen) for
# tests/test_rendered.py and bench/robustness.py. Where apt-get cannot run, those tests are skipped and say why.
FONT_PACKAGES := fonts-bwht fonts-dkg-handwriting fonts-comic-neue fonts-dancingscript fonts-dejavu-core \
	fonts-liberation fonts-ecolier-court fonts-breip fonts-humor-sans fonts-kaushanscript hershey-fonts-data
fonts:
	-apt-get install -y $(FONT_PACKAGES) || (apt-get update && apt-get install -y $(FONT_PACKAGES))

setup: $(STAMP)

train: $(STAMP)
	$(BIN)/lightning-digits fit

evaluate: $(STAMP)
	$(BIN)/lightning-digits evaluate

demo: $(STAMP)
	$(BIN)/lightning-digits demo

serve: $(STAMP)
	$(BIN)/lightning-digits serve

tune: $(STAMP)
	$(BIN)/lightning-digits tune -c tune

# The first run on a machine with GPUs (every GPU; docs/performance.md says what to send back), and the same rows
# in a reduced form on 2 CPU processes (tests/test_gpu_check.py runs that one).
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

gpu-check-cpu: $(STAMP)
	$(BIN)/python bench/gpu_check.py --cpu

# Two pytest workers, one file each at a time (module fixtures stay in one process): most tests wait on a
# subprocess, a server or a database, so two keep both cores busy (docs/performance.md has the timings).
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadfile

test: $(STAMP)
	$(PYTEST)

# The edit loop: everything but the tests marked slow (kills, DDP, real-MNIST fits, the browser).
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
