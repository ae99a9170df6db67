# Twinclass: `make serve` runs a lesson server with a demo lesson; `make test` runs every test.
# Both create what they need: the virtualenv, Python packages, browser assets from the npm
# lockfile, and (for tests) Debian's redis-server, chromium and espeak-ng when they are absent.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON ?= python3

.PHONY: install serve test system-deps web-deps lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) web-deps

web-deps:
	@if [ -f web/package-lock.json ] && [ ! web/node_modules/.package-lock.json -nt web/package-lock.json ]; then \
		cd web && npm ci --no-audit --no-fund --loglevel=error; \
	fi

system-deps:
	@command -v redis-server >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server)
	@test -x /usr/bin/chromium || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)
	@command -v espeak-ng >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng)

serve: install
	$(VENV)/bin/twinclass serve --host 127.0.0.1 --port 8080 --data-dir ./var

test: install system-deps
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check sfu classroom_client recorder scheduler web twinclass tests bench
	$(VENV)/bin/mypy sfu classroom_client recorder scheduler web twinclass

bench: install
	$(PY) bench/sfu_forwarding.py

clean:
	rm -rf $(VENV) web/node_modules
