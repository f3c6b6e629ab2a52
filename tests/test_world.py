"""The engine: exact tick times, the rectifier's mode story, equalize, series strings."""

from datetime import UTC, timedelta

import duckdb
import numpy as np
import pytest
from tests.helpers import CollectingSink, make_recording

from battsim.engine.battery import Mode
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import DEFAULT_START, World
from battsim.recordings.recorder import Recorder, RunInfo
from battsim.recordings.run_config import RunConfig


def test_timestamps_are_exactly_start_plus_k_intervals_over_a_year(tmp_path):
    path = tmp_path / "year.duckdb"
    make_recording(path, preset="single-string", days=365, interval_s=3600)
    with duckdb.connect(str(path), read_only=True) as con:
        ticks, bad = con.execute("""
            WITH t AS (SELECT DISTINCT timestamp FROM reading_samples),
                 k AS (SELECT timestamp, row_number() OVER (ORDER BY timestamp) - 1 AS k FROM t)
            SELECT count(*),
                   count(*) FILTER (WHERE timestamp <> TIMESTAMPTZ '2026-01-01 00:00:00+07' + k * INTERVAL 1 HOUR)
            FROM k""").fetchone()
        assert ticks == 365 * 24
        assert bad == 0
        per_tick = con.execute("SELECT DISTINCT count(*) FROM reading_samples GROUP BY timestamp").fetchall()
        assert per_tick == [(24,)]


def run_world(days=2.0, interval_s=60, preset="single-string", actions=()):
    """Run a world with actions [(virtual_s, callable(world))], return (world, sink)."""
    sink = CollectingSink(keep_batches=True)
    world = World(build_fleet(get_preset(preset), seed=4), sink, seed=4, interval_s=interval_s)
    for at_s, action in actions:
        world.run_until(at_s)
        action(world)
    world.run_until(days * 86400)
    world.flush()
    return world, sink


def modes_over_time(sink):
    """Per tick: (virtual seconds, mode of jar 0, mean current, mean voltage)."""
    rows = []
    for batch in sink.batches:
        jars = len(batch.columns["battery_key"]) // batch.ticks
        mode = batch.columns["mode"].reshape(batch.ticks, jars)
        current = batch.columns["current_a"].reshape(batch.ticks, jars)
        stamp = batch.columns["timestamp_us"].reshape(batch.ticks, jars)[:, 0]
        for k in range(batch.ticks):
            rows.append((stamp[k], Mode(mode[k, 0]), current[k].mean(), float(current[k].std())))
    return rows


def test_outage_story_discharge_then_boost_then_float():
    hour = 3600
    world, sink = run_world(actions=[(10 * hour, lambda w: w.lose_input([0], "test")),
                                     (11 * hour, lambda w: w.restore_input([0], "test"))])
    rows = modes_over_time(sink)
    start_us = world.start_us
    by_hour = {(stamp - start_us) / 3.6e9: (mode, current, spread) for stamp, mode, current, spread in rows}
    assert by_hour[9.5][0] == Mode.FLOAT
    assert by_hour[10.5][0] == Mode.DISCHARGE and by_hour[10.5][1] < -20  # 8 kW from ~290 V: about -28 A
    assert by_hour[10.5][2] < 0.5  # a series string: every jar carries the same current (up to sensor noise)
    assert by_hour[11.5][0] == Mode.BOOST and by_hour[11.5][1] > 5  # current-limited recharge
    assert by_hour[40][0] == Mode.FLOAT
    kinds = [event.kind for event in sink.events if event.kind != "ohmic_test"]  # the monitor's own tests (issue 15)
    assert kinds[:3] == ["outage_start", "mode_change", "outage_end"]
    assert [e.detail for e in sink.events if e.kind == "mode_change"][:3] == [
        {"from": "float", "to": "discharge"}, {"from": "discharge", "to": "boost"}, {"from": "boost", "to": "float"}]


def test_a_long_outage_ends_in_low_voltage_disconnect():
    hour = 3600
    world, sink = run_world(days=1.5, actions=[(1 * hour, lambda w: w.lose_input([0], "test")),
                                               (12 * hour, lambda w: w.restore_input([0], "test"))])
    disconnect = [e for e in sink.events if e.kind == "low_voltage_disconnect"]
    assert len(disconnect) == 1
    # At the crossing instant, at the end voltage (not at the next tick, below it).
    assert disconnect[0].detail["voltage_v"] == pytest.approx(1.75 * 6 * 24, abs=0.03)
    rows = modes_over_time(sink)
    # A jar driven past empty by its string reverses, but no further than its cells' reversal voltage.
    assert min(float(b.columns["true_voltage_v"].min()) for b in sink.batches) >= -6 * 2.0
    # Issue 15: current_a is the string's Hall sensor, whose zero offset is tenths of an amp; the disconnected
    # string's true current (string_readings' ground truth) is what carries nothing.
    modes = np.concatenate([b.string_columns["mode"] for b in sink.batches])
    true_current = np.concatenate([b.string_columns["true_current_a"] for b in sink.batches])
    disconnected = modes == Mode.DISCONNECTED
    assert disconnected.any() and np.all(np.abs(true_current[disconnected]) < 0.05)
    assert rows[-1][1] in (Mode.BOOST, Mode.FLOAT)


def test_overlapping_outage_causes_need_all_to_clear():
    world, sink = run_world(days=0.2, actions=[
        (600, lambda w: w.lose_input([0], "grid")),
        (1200, lambda w: w.lose_input([0], "ups")),
        (1800, lambda w: w.restore_input([0], "grid")),
        (2400, lambda w: None),
    ])
    assert world.string_input_down_causes[0] == 1
    assert world.string_mode[0] in (Mode.DISCHARGE, Mode.DISCONNECTED)
    assert [e.kind for e in sink.events].count("outage_start") == 1
    assert "outage_end" not in [e.kind for e in sink.events]


def test_equalize_runs_every_90_days_at_local_night():
    world, sink = run_world(days=200, interval_s=3600, preset="single-string")
    starts = [e for e in sink.events if e.kind == "mode_change" and e.detail["to"] == "equalize"]
    assert len(starts) == 2 or len(starts) == 3
    gap_s = (starts[1].timestamp_us - starts[0].timestamp_us) / 1e6
    assert gap_s == 90 * 86400
    local = DEFAULT_START.tzinfo
    from datetime import datetime
    moment = datetime.fromtimestamp(starts[0].timestamp_us / 1e6, tz=UTC).astimezone(local)
    assert moment.hour == 0


def test_recorder_and_world_agree_on_counts(tmp_path):
    fleet = build_fleet(get_preset("single-string"), seed=2)
    config = RunConfig(fleet={}, seed=2, interval_s=30)
    recorder = Recorder(tmp_path / "r.duckdb", fleet, RunInfo(2, DEFAULT_START, None, 30, config))
    world = World(fleet, recorder, seed=2, interval_s=30, batch_rows=1000)
    world.run_until(timedelta(hours=5).total_seconds())
    world.flush()
    recorder.close()
    assert recorder.readings_written == 600 * 24
    with duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM readings").fetchone()[0] == 600 * 24
        assert np.isclose(con.execute("SELECT readings FROM runs").fetchone()[0], 600 * 24)
