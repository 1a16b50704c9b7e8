# The two commands: `make run` (serve on http://127.0.0.1:8000) and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.12 (Django 6.1 and fast-agent need >= 3.12): PYTHON=..., else python3.12 on PATH, else pyenv's.
# Each candidate is run, not just found: pyenv puts a python3.12 shim on PATH that fails unless 3.12 is selected.
ifndef PYTHON
PYTHON := $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python 2>/dev/null | sort -V -r) /usr/bin/python3.12 /usr/local/bin/python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
endif

.PHONY: run test venv bench worker check security clean-data

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@if [ -z "$(PYTHON)" ]; then echo "Python 3.12 not found: install it (e.g. 'pyenv install 3.12') or run 'make PYTHON=/path/to/python3.12'"; exit 1; fi
	@test -x $(PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

run: venv
	$(PY) manage.py serve

worker: venv
	$(VENV)/bin/celery -A mcpagent worker -Q celery,celery.prefetch --loglevel=INFO

# Tests run in TEST_PROCESSES processes (pytest-xdist), a file's tests in one of them: most of the suite waits on
# servers, workers and databases it started, so two processes on two cores take about half the time of one.
TEST_PROCESSES ?= 2

# Redis: use the one on 127.0.0.1:6379, start one if none answers; worker tests skip (saying why) without it.
test: venv
	@$(PY) -c "import redis; redis.Redis(socket_timeout=1).ping()" 2>/dev/null \
	  || { command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null && sleep 0.5 && echo "started redis-server on 127.0.0.1:6379"; } \
	  || echo "no Redis available: tests that need a real worker will be skipped"
	$(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

bench: venv
	$(PY) benchmarks/run_all.py

# bandit on our code and pip-audit on the installed dependencies; allowlists with reasons in .ci/ (see README).
security: venv
	$(PY) .ci/security_scan.py

check: venv
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

clean-data:
	-$(PY) -m mcpagent.embedded_db stop
	rm -rf .data
