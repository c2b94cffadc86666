# refdesk: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP_STAMP := $(VENV)/.installed
DEV_ENV := DEBUG=1

.PHONY: run test test-citus lint format install clean bench load tripwire

$(PIP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(PIP_STAMP)

install: $(PIP_STAMP)

## Serve the app on SQLite with demo data at http://127.0.0.1:8000/, with its job worker (and the hourly purge of abandoned uploads) beside it
run: $(PIP_STAMP)
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) $(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	$(DEV_ENV) $(BIN)/python manage.py purge_uploads --every 3600 >/dev/null & purger=$$!; \
	trap 'kill $$worker $$purger 2>/dev/null' EXIT INT TERM; \
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

## The whole suite (unit, HTTP and browser tests) on DATABASE_URL (SQLite by default)
test: $(PIP_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(DEV_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

## The suite, browser tests aside, on a three-node Citus cluster built from .ci/citus (as root),
## with every statement of the app that would visit all shards failing its test
test-citus: $(PIP_STAMP)
	.ci/citus/recipe.sh .ci/citus/citus-13.2.2.tar.gz
	CITUS_FAN_OUT=error REFDESK_EXPECT_DB=postgresql \
	  DATABASE_URL=citus://postgres@127.0.0.1:9700/refdesk $(BIN)/pytest -n 2 --ignore=tests/browser $(PYTEST_ARGS)

## Benchmark at BENCH_N references (default 1,000,000) in its own PostgreSQL database: bench/README.md
bench: $(PIP_STAMP)
	$(BIN)/python -m bench.run

## Every bulk path at 200,000 references, each within 60 s (CI runs it): bench/tripwire.py
tripwire: $(PIP_STAMP)
	$(BIN)/python -m bench.tripwire

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache db.sqlite3*

## 50 clients for 60 s against gunicorn on a throwaway PostgreSQL cluster of its own, a job worker killed and PostgreSQL restarted under load, a connector paging the feed: bench/README.md
load: $(PIP_STAMP)
	$(BIN)/python -m bench.load_faults
