# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install the
# exact versions in requirements.lock (the ones the suite last passed with), then battsim itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install run test test-lowest lint fuzz bench bench-report bench-scale lock clean system-packages

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

# Real servers the tests start on loopback (and stop): Debian's chromium for the dashboard's browser
# tests (Playwright, no browser download), mosquitto for the MQTT sink, PostgreSQL for the database sink.
SYSTEM_PACKAGES := chromium mosquitto postgresql
system-packages:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || (apt-get update && apt-get install -y $(SYSTEM_PACKAGES))

lint: install
	$(VENV)/bin/ruff check src tests bench tools

test: install system-packages lint
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15

# The fuzzers with a longer budget than the one `make test` gives them.
fuzz: install
	BATTSIM_FUZZ_EXAMPLES=2000 $(PY) -m pytest -n 2 --dist loadgroup -m fuzz

# Each benchmark writes its figures, the load average and the library versions to bench/results.json;
# the README's performance table is then generated from that file (tools/bench_table.py), never typed.
bench: install system-packages
	$(PY) bench/bench_batch.py --days 7 --memory-days 30
	$(PY) bench/bench_live.py
	$(PY) bench/bench_replay.py
	$(PY) bench/bench_dashboard.py
	$(PY) bench/bench_sinks.py
	$(PY) bench/bench_modbus.py --clients 50 --seconds 30
	$(PY) tools/bench_table.py

# Fleets of 24 to 100,000 jars with 1 and 2 workers (about 15 minutes); BENCH_SCALE_ARGS=--million adds
# 1 M jars for a virtual day (about 20 minutes more).
BENCH_SCALE_ARGS ?=
bench-scale: install
	$(PY) bench/bench_scale.py --sizes 24,1944,20000,100000 $(BENCH_SCALE_ARGS)
	$(PY) tools/bench_table.py

# The report on a month of the full fleet (a week recorded, repeated four times): minutes of disk and CPU.
BENCH_WEEK := bench/.full-week.duckdb
bench-report: install
	test -f $(BENCH_WEEK) || $(VENV)/bin/battsim run --preset thailand-full --days 7 --no-random-outages --no-progress --out $(BENCH_WEEK)
	$(PY) bench/bench_report.py $(BENCH_WEEK) --repeat 4
	$(PY) tools/bench_table.py

# The suite against the lowest versions pyproject.toml allows (uv's lowest-direct resolution), in a venv of
# its own: the declared ranges are tested, not only the lock. Not part of `make test`: run it after changing a
# bound or adding a dependency. The resolved set is synced exactly (a version left by an earlier run or tried by
# hand does not linger) and its direct versions printed. A hung test is killed with its stacks dumped (thread
# method: a test stuck where Python's signal handler never runs, as one was under uvloop, still ends), and its
# worker replaced, so the run always finishes with the list of what failed.
LOWEST := .venv-lowest
LOWEST_LOCK := $(LOWEST)/requirements-lowest.txt
test-lowest: install system-packages
	$(VENV)/bin/uv venv --quiet --allow-existing --python $(PY) $(LOWEST)
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra test --python-version 3.11 --resolution lowest-direct -o $(LOWEST_LOCK)
	$(VENV)/bin/uv pip sync --quiet --python $(LOWEST)/bin/python $(LOWEST_LOCK)
	$(VENV)/bin/uv pip install --quiet --python $(LOWEST)/bin/python --no-deps -e .
	@echo "lowest direct versions: $$(awk '/^[a-z0-9]/ {pkg = $$1} /battsim \(pyproject.toml\)/ {print pkg}' $(LOWEST_LOCK) | tr '\n' ' ')"
	$(LOWEST)/bin/python -m pytest -n 2 --dist loadgroup -o timeout_method=thread -rfE

# Refresh the lock to the newest releases pyproject.toml allows; run `make test` before committing it.
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 --upgrade -o requirements.lock

clean:
	rm -rf $(VENV) $(LOWEST) recordings .pytest_cache
