# The two commands a new user needs (README): `make serve` and `make test`.
# Both install what they need into .venv first (torch pinned first: an unpinned torch pulls CUDA wheels).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000

.PHONY: install serve test lint bench clean

$(STAMP): pyproject.toml tests/plugin_pkg/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q -c constraints.txt ./tests/plugin_pkg
	touch $(STAMP)

install: $(STAMP)

# The service with its embedded default: REST API on http://127.0.0.1:$(PORT) and 2 local worker processes
# on the SQLite file ./auxtune.db. The first start prints an admin token once (or set AUXTUNE_ADMIN_TOKEN).
serve: install
	$(BIN)/auxtune serve --port $(PORT) --workers 2

test: install
	bash scripts/ensure-postgres.sh
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)  # dashboard tests (Playwright)
	$(BIN)/ruff check tuner api storage tests bench examples
	$(BIN)/mypy tuner storage api
	$(BIN)/lint-imports  # the floors (pyproject.toml [tool.importlinter], README Layout)
	$(BIN)/python -m pytest -q -n 3 --durations=15  # xdist: most tests wait on real processes, so 3 share 2 cores well

lint: install
	$(BIN)/ruff check tuner api storage tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/sanity_cost.py
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info auxtune.db auxtune.db-wal auxtune.db-shm
