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

from battsim.engine.fleet import get_preset
from battsim.scenarios import load_timeline, shipped_timelines
from battsim.scenarios.default_outages import GRID_OUTAGES, with_random_outages
from battsim.service import cli
from helpers import regional_draws
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


def test_the_outages_are_the_same_for_the_same_seed_and_differ_for_another(default_recording, tmp_path):
    again = default_run(tmp_path / "again.duckdb", "--days", "7")
    assert rows(again, OUTAGES_SQL) == rows(default_recording, OUTAGES_SQL)
    other = default_run(tmp_path / "other.duckdb", "--seed", "1")
    assert rows(other, OUTAGES_SQL) != rows(default_recording, OUTAGES_SQL)


def test_no_random_outages_keeps_the_fleet_on_float(tmp_path):
    quiet = default_run(tmp_path / "quiet.duckdb", "--no-random-outages")
    assert rows(quiet, OUTAGES_SQL) == []
    assert rows(quiet, readme_discharge_query()) == []
    assert json.loads(rows(quiet, "SELECT config FROM runs")[0][0])["timelines"] == []


def test_a_default_run_plays_each_sites_draws_at_its_regional_rate(default_recording):
    """Each site's outages are its own stream's draws at its outages_per_year (test_timeline checks those draws'
    rates and durations over 30 years), started and ended when drawn."""
    played = {}
    for site_id, start_s, duration_s, ended in rows(default_recording, """
            SELECT site_id, epoch(o.start) - epoch(r.start), duration_s, ended
            FROM outage_autonomy o, runs r ORDER BY ALL"""):
        played.setdefault(site_id, []).append((start_s, duration_s if ended else None))
    assert len(played) >= 2, played
    for site in get_preset("thailand-9x24").sites:
        drawn = regional_draws(site, seed=0, years=7 / 365.25)
        assert len(played.get(site.site_id, [])) == len(drawn), site.site_id
        for (start_s, down_s), (drawn_start_s, drawn_down_s) in zip(played.get(site.site_id, []), drawn):
            assert start_s == pytest.approx(drawn_start_s, abs=1e-3)
            assert down_s is None or down_s == pytest.approx(drawn_down_s, abs=1e-3)


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
