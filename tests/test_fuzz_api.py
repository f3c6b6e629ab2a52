"""Schemathesis over the service's OpenAPI schema, against a real server with real state.

Every operation is called with requests schemathesis generates from the schema, valid ones (positive) and
invalid ones (negative), while the server holds real state: a recording in its data directory (its id, run
id and battery ids are put into the requests half of the time, so handlers get past "no such recording"), a
live simulation running, and a replay session open. The property: no answer is a server error (5xx) or
carries a traceback.

The budget is BATTSIM_FUZZ_EXAMPLES examples per operation and mode (40 by default, about a minute in
``make test``; ``make fuzz`` gives 2000), derandomized so a run is repeatable. The counts (operations,
requests, server errors) are printed at the end of the module.
"""

from __future__ import annotations

import os
import random
import zlib
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from battsim.scenarios import CATALOGUE, shipped_timelines
from battsim.service.app import create_app
from helpers import make_recording
from test_service_helpers import serve

EXAMPLES = int(os.environ.get("BATTSIM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
API = "/api/v1"
# Live starts that really start (the others meet a running simulation: 409). Each creates a recording, and
# the listing opens every one, so they are bounded however long the budget.
MAX_REAL_STARTS = 12
LIVE = {"preset": "single-string", "interval_seconds": 60, "speed": 600, "seed": 3}

# Names the schema gives as plain strings: the fuzzer gets real ones half of the time.
SCENARIOS = sorted(CATALOGUE)
TIMELINES = sorted(shipped_timelines())
PRESETS_TRIED = ["single-string"]  # the smallest fleet: starting one is quick

pytestmark = pytest.mark.fuzz

SCHEMA = schemathesis.openapi.from_dict(create_app("unused").openapi())
OPERATIONS = {operation.label: operation for operation in (result.ok() for result in SCHEMA.get_all_operations())}
COUNTS: Counter = Counter()
FAILURES: list[str] = []


class State:
    """The server, and what the fuzzer substitutes into requests: the recording's ids and batteries."""

    def __init__(self, base: str, data_dir: Path, run_id: str, battery_ids: list[str], site_ids: list[str]):
        self.base, self.data_dir = base, data_dir
        self.recording_ids = ["day", run_id]
        self.battery_ids, self.site_ids = battery_ids, site_ids
        self.http = requests.Session()
        self.real_starts = 0

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.http.post(self.base + path, json=body or {}, timeout=30)

    def ensure_live(self) -> None:
        if not self.http.get(f"{self.base}{API}/simulation/status", timeout=30).json()["is_running"]:
            self.post(f"{API}/simulation/start", LIVE)

    def ensure_replay(self) -> None:
        if self.http.get(f"{self.base}{API}/replay/status", timeout=30).json().get("state") in ("idle", None):
            self.post(f"{API}/replay/start", {"recording": "day", "speed": 3600, "loop": True})


@pytest.fixture(scope="module")
def state(tmp_path_factory, request):
    data = tmp_path_factory.mktemp("fuzz") / "recordings"
    data.mkdir()
    summary = make_recording(data / "day.duckdb", days=0.25, interval_s=60)
    with serve(data) as server:
        detail = server.http.get(f"{API}/recordings/day").json()
        yield State(server.base, data, summary.run_id, detail["battery_ids"], detail["sites"])
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"schemathesis: {COUNTS['operations']} operations, {COUNTS['requests']} requests, "
            f"{COUNTS['server_errors']} server errors, {COUNTS['tracebacks']} tracebacks")
    print(line)
    if reporter is not None:
        reporter.write_line(line)


def substitute(case, state: State, rng: random.Random) -> None:
    """Real ids half of the time, in the body and the path, so handlers run past their lookups."""
    if rng.random() < 0.5:
        return
    if case.path_parameters and "recording_id" in case.path_parameters:
        case.path_parameters["recording_id"] = rng.choice(state.recording_ids)
    body = case.body
    if isinstance(body, dict):
        if "recording" in body:
            body["recording"] = rng.choice(state.recording_ids)
        for key, known in (("battery_ids", state.battery_ids), ("site_ids", state.site_ids)):
            if isinstance(body.get(key), list):
                body[key] = rng.sample(known, k=min(len(known), rng.randint(1, 3)))
        if "scenario" in body:
            body["scenario"] = rng.choice(SCENARIOS)
        if "timeline" in body:
            body["timeline"] = rng.choice(TIMELINES)
        if "preset" in body or (case.operation.path.endswith("/simulation/start") and "batteries" not in body):
            body["preset"] = rng.choice(PRESETS_TRIED)
            body.pop("batteries", None)
        if "time" in body:
            body["time"] = rng.choice(["+1h", "-30m", "+5h59m", "2025-12-31T20:00:00Z", "2026-01-01T03:00"])
        if case.operation.path.endswith("/query") and "sql" in body:
            body["sql"] = "SELECT battery_id, avg(voltage_v) FROM readings GROUP BY ALL"


def prepare(label: str, state: State, rng: random.Random) -> None:
    """The state an operation meets: a simulation running (or, for some starts, not), a replay open."""
    if label == f"POST {API}/simulation/start":
        if state.real_starts < MAX_REAL_STARTS and rng.random() < 0.3:
            state.real_starts += 1
            state.post(f"{API}/simulation/stop")
            return
    state.ensure_live()
    if "/replay/" in label and not label.endswith("/replay/start"):
        state.ensure_replay()


def settle(label: str, case, state: State) -> None:
    """Undo what would pile up over the module, all in this process: a named session an example started keeps
    running (up to 8 of them), and a fuzzed speed (up to 1,000,000x) keeps the simulation busy for every later
    request."""
    name = (case.path_parameters or {}).get("name")
    named = isinstance(name, str) and name != "default"
    if named and label.endswith("/simulation/start"):
        state.post(f"{API}/sessions/{quote(name, safe='')}/simulation/stop")
    if label.endswith("/simulation/speed") and not named:
        state.post(f"{API}/simulation/speed", {"speed": LIVE["speed"]})


def check(label: str, case, response: requests.Response) -> None:
    COUNTS["requests"] += 1
    text = response.text
    if response.status_code >= 500:
        COUNTS["server_errors"] += 1
        FAILURES.append(f"{label} -> {response.status_code}: body {str(case.body)[:200]!r}: {text[:300]}")
    if "Traceback" in text:
        COUNTS["tracebacks"] += 1
        FAILURES.append(f"{label} answered a traceback: {text[:300]}")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_operation_answers_a_server_error(state, label, mode):
    operation = OPERATIONS[label]
    COUNTS["operations"] += mode is GenerationMode.POSITIVE
    rng = random.Random(zlib.crc32(f"{label} {mode}".encode()))
    before = len(FAILURES)

    @FUZZ
    @given(case=operation.as_strategy(mode))
    def run(case):
        prepare(label, state, rng)
        substitute(case, state, rng)
        check(label, case, case.call(base_url=state.base, session=state.http, timeout=30))
        settle(label, case, state)

    try:
        run()
    except Unsatisfiable:  # an operation without parameters or body has no invalid requests
        pytest.skip("nothing in this operation to make invalid")
    assert FAILURES[before:] == []
