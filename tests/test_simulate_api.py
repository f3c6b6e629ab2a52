"""battsim.simulate / battsim.open_recording: battsim run from Python, and shipped timeline names."""

from __future__ import annotations

import polars as pl
import pytest

import battsim
from battsim.engine.fleet import national_telecom
from battsim.scenarios import load_timeline, shipped_timelines

ONE_DAY = dict(preset="single-string", days=1, timeline="daily-outage", seed=7, interval_s=300)


def test_simulate_in_memory_has_the_readings_and_events_of_the_timeline():
    with battsim.simulate(**ONE_DAY) as rec:
        assert rec.path is None
        readings = rec.readings().collect()
        assert readings.height == 24 * 288  # 24 jars, a reading every 5 min for a day
        assert rec.run.status == "complete" and rec.run.seed == 7
        kinds = set(rec.events()["kind"])
        assert {"scenario_applied", "outage_start", "outage_end"} <= kinds
        assert rec.sql("SELECT count(*) AS n FROM readings")["n"][0] == readings.height


def test_simulate_to_a_file_equals_in_memory_and_reopens(tmp_path):
    out = tmp_path / "run.duckdb"
    with battsim.simulate(**ONE_DAY, out=out) as on_disk, battsim.simulate(**ONE_DAY) as in_memory:
        assert on_disk.path == out
        assert on_disk.readings().collect().equals(in_memory.readings().collect())
    with battsim.open_recording(out) as again:
        assert isinstance(again, battsim.Recording)
        assert again.events().height > 0


def test_a_different_seed_gives_different_readings():
    with battsim.simulate(**{**ONE_DAY, "seed": 8}) as other, battsim.simulate(**ONE_DAY) as rec:
        assert not other.readings(columns=["voltage_v"]).collect().equals(rec.readings(columns=["voltage_v"]).collect())


@pytest.mark.parametrize(("arguments", "named"), [
    (dict(days=0), "days"), (dict(interval_s=0), "interval_s"), (dict(seed=-1), "seed"),
    (dict(days=1, until="2026-01-02"), "days/until"), (dict(start="yesterday"), "start"),
    (dict(preset="single-string", fleet="x.toml"), "preset/fleet"), (dict(until="2025-01-01"), "until"),
])
def test_bad_arguments_name_the_argument(arguments, named):
    with pytest.raises(ValueError, match=f"^{named}: "):
        battsim.simulate(**arguments)


def test_a_fleet_too_big_for_one_recording_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "big.duckdb"
    with pytest.raises(ValueError, match=r"^fleet: 66,536 jars, and one recording holds at most 60,000; .*--workers"):
        battsim.simulate(fleet=national_telecom(6000), days=0.01, out=out)
    assert not out.exists()


def test_load_timeline_takes_the_shipped_names_like_the_cli():
    for name, path in shipped_timelines().items():
        assert load_timeline(name).text == load_timeline(path).text
        assert load_timeline(name + ".toml").source == name + ".toml"


def test_a_file_named_like_a_shipped_timeline_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "daily-outage.toml").write_text('description = "mine"\n')
    assert load_timeline("daily-outage.toml").description == "mine"


def test_readings_are_polars():
    with battsim.simulate(preset="single-string", days=0.1, seed=1) as rec:
        assert isinstance(rec.readings(), pl.LazyFrame) and isinstance(rec.events(), pl.DataFrame)
