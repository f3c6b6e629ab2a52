# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install run test bench clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(INSTALLED)

run: install
	$(VENV)/bin/battsim serve --preset thailand-9x24 --data-dir recordings

# The dashboard's browser tests drive Debian's chromium with Playwright (no browser download).
chromium:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

test: install chromium
	$(PY) -m pytest -n 2

bench: install chromium
	$(PY) bench/bench_batch.py --days 7 --memory-days 30
	$(PY) bench/bench_live.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_dashboard.py

clean:
	rm -rf $(VENV) recordings .pytest_cache
