"""A default ``battsim run`` / ``battsim serve`` includes the fleet's seeded random grid outages (issue 23, point 2):
at each site's ``outages_per_year``, the same for the same seed, off with ``--no-random-outages``, never doubled by a
timeline that has its own ``grid_outage`` entry; and the README's discharge query answers rows on a default run."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from battsim.scenarios import load_timeline, shipped_timelines
from battsim.scenarios.default_outages import GRID_OUTAGES, with_random_outages
from battsim.service import cli
from test_service_helpers import WAIT_S, battsim_command, free_port, json_once_listening, wait_until

# One worker runs this module (make test: --dist loadgroup) and its recordings are session fixtures, so each is
# simulated once, not once per worker or per stretch of this module's tests.
pytestmark = pytest.mark.xdist_group("default_outages")
README = Path(__file__).resolve().parents[1] / "README.md"
OUTAGES_SQL = "SELECT site_id, timestamp, kind FROM events WHERE kind IN ('outage_start', 'outage_end') ORDER BY ALL"


def default_run(out: Path, *flags: str) -> Path:
    """``battsim run --out OUT`` with nothing else but ``flags``: the preset, span, interval and seed by default."""
    result = CliRunner().invoke(cli.app, ["run", "--out", str(out), "--no-progress", *flags])
    assert result.exit_code == 0, result.output
    return out


def rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def readme_discharge_query() -> str:
    """The SQL of the README's first query of discharging readings, as a user would copy it."""
    for line in README.read_text(encoding="utf-8").splitlines():
        if "mode = 'discharge'" in line and (found := re.search(r'"(SELECT [^"]+)"', line)):
            return found.group(1)
    raise AssertionError("README.md has no query with mode = 'discharge'")


@pytest.fixture(scope="session")
def default_recording(tmp_path_factory) -> Path:
    return default_run(tmp_path_factory.mktemp("default") / "week.duckdb")


@pytest.fixture(scope="session")  # session, not module: a worker may run other modules between this one's tests
def year_at_seed_1(tmp_path_factory) -> Path:
    """A year of the default preset at hourly readings and another seed than the default's (shared: it takes a while)."""
    return default_run(tmp_path_factory.mktemp("year") / "year.duckdb", "--seed", "1", "--days", "365",
                       "--interval", "3600")


def test_a_default_run_answers_the_readme_discharge_query_with_rows(default_recording):
    discharging = rows(default_recording, readme_discharge_query())
    assert discharging, "the README's discharge query found no rows on a default run"
    outages = rows(default_recording, OUTAGES_SQL)
    assert {kind for _, _, kind in outages} == {"outage_start", "outage_end"}
    # Only sites that lost the grid discharged.
    assert {string_id.split("_SYS")[0] for string_id, _ in discharging} <= {site for site, _, _ in outages}
    config = json.loads(rows(default_recording, "SELECT config FROM runs")[0][0])
    assert [t["source"] for t in config["timelines"]] == [GRID_OUTAGES]
    sources = rows(default_recording, "SELECT DISTINCT detail->>'source' FROM events WHERE kind = 'scenario_applied'")
    assert sources == [(f"random {GRID_OUTAGES}: [[random]] #1 (grid)",)]


def test_the_outages_are_the_same_for_the_same_seed_and_differ_for_another(default_recording, year_at_seed_1,
                                                                          tmp_path):
    again = default_run(tmp_path / "again.duckdb", "--days", "7")
    assert rows(again, OUTAGES_SQL) == rows(default_recording, OUTAGES_SQL)
    # Over a year at seed 1, the same preset: other instants (and, at 37 outages a year across the sites, many).
    other = rows(year_at_seed_1, OUTAGES_SQL)
    assert other and set(other) != set(rows(default_recording, OUTAGES_SQL))


def test_no_random_outages_keeps_the_fleet_on_float(tmp_path):
    quiet = default_run(tmp_path / "quiet.duckdb", "--no-random-outages")
    assert rows(quiet, OUTAGES_SQL) == []
    assert rows(quiet, readme_discharge_query()) == []
    assert json.loads(rows(quiet, "SELECT config FROM runs")[0][0])["timelines"] == []


def test_outages_follow_each_site_rate(year_at_seed_1):
    # A year at hourly readings: Phuket (8 a year) has more than Chiang Mai (2 a year), every one 30-90 minutes.
    year = year_at_seed_1
    per_site = dict(rows(year, "SELECT site_id, count(*) FROM events WHERE kind = 'outage_start' GROUP BY ALL"))
    assert per_site.get("HKT_DC1", 0) > per_site.get("CNX_DC1", 0)
    durations_min = [r[0] for r in rows(year, "SELECT duration_s / 60 FROM outage_autonomy WHERE ended")]
    assert durations_min and all(30 - 1e-6 <= d <= 90 + 1e-6 for d in durations_min)


def test_a_timeline_with_its_own_grid_outages_is_not_doubled():
    year = load_timeline(shipped_timelines()["realistic-year"])
    assert with_random_outages([year]) == [year]
    daily = load_timeline(shipped_timelines()["daily-outage"])
    assert [t.source for t in with_random_outages([daily])] == [daily.source, GRID_OUTAGES]
    assert with_random_outages([daily], enabled=False) == [daily]


def serve_status(tmp_path: Path, *flags: str) -> dict:
    """The status of ``battsim serve --preset single-string`` once booted (then stopped)."""
    port = free_port()
    process = subprocess.Popen(battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path / "rec"),
                                                    "--preset", "single-string", *flags],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_until(lambda: (s := json_once_listening(
            process, f"http://127.0.0.1:{port}/api/v1/simulation/status")) and s["is_running"] and s)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    return status


def test_serve_boots_with_random_outages_unless_switched_off(tmp_path):
    assert serve_status(tmp_path / "on")["timelines"] == [GRID_OUTAGES]
    assert serve_status(tmp_path / "off", "--no-random-outages")["timelines"] == []
