# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install the
# exact versions in requirements.lock (the ones the suite last passed with), then battsim itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint fuzz bench lock clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): requirements.lock pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(INSTALLED)

run: install
	$(VENV)/bin/battsim serve --preset thailand-9x24 --data-dir recordings

# The dashboard's browser tests drive Debian's chromium with Playwright (no browser download).
chromium:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

lint: install
	$(VENV)/bin/ruff check src tests bench tools

test: install chromium lint
	$(PY) -m pytest -n 2

# The fuzzers with a longer budget than the one `make test` gives them.
fuzz: install
	BATTSIM_FUZZ_EXAMPLES=2000 $(PY) -m pytest -n 2 -m fuzz

bench: install chromium
	$(PY) bench/bench_batch.py --days 7 --memory-days 30
	$(PY) bench/bench_live.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_dashboard.py

# Refresh the lock to the newest releases pyproject.toml allows; run `make test` before committing it.
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 --upgrade -o requirements.lock

clean:
	rm -rf $(VENV) recordings .pytest_cache
