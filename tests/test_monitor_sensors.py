"""Issue 15, point 3: calibration offsets and drift per jar, probes like real ones, communication gaps, the
monitor's SOC estimate, the room probe; ground truth kept; the docstring says what the code does."""

import re
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from tests.helpers import CollectingSink, make_recording

from battsim.engine import sensors
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import DEFAULT_START, World
from battsim.recordings.batch import BatchRun, record_run


def run_world(seed: int, days: float, interval_s: int = 3600, preset: str = "single-string", actions=()):
    sink = CollectingSink(keep_batches=True)
    world = World(build_fleet(get_preset(preset), seed=seed), sink, seed=seed, interval_s=interval_s)
    for at_s, action in actions:
        world.run_until(at_s)
        action(world)
    world.run_until(days * 86_400)
    world.flush()
    jars = world.fleet.size

    def column(name):
        return np.concatenate([b.columns[name] for b in sink.batches]).reshape(-1, jars).astype(np.float64)

    return world, column


def test_each_jar_has_its_own_seeded_calibration_and_it_drifts():
    world, column = run_world(seed=3, days=365)
    gain = column("voltage_v") / column("true_voltage_v") - 1.0
    temperature_error = column("temperature_c") - column("true_temperature_c")
    first, last = slice(0, 24 * 7), slice(-24 * 7, None)
    calibration = world.monitor.calibration
    # Voltage: the jar's gain error at the start, then its drift over the year (σ 0.05 % each).
    assert np.allclose(np.nanmean(gain[first], axis=0), calibration.voltage_gain, atol=5e-5)
    drift = np.nanmean(gain[last], axis=0) - np.nanmean(gain[first], axis=0)
    assert np.allclose(drift, calibration.voltage_drift_per_year, atol=5e-5)
    assert 2e-4 < np.std(calibration.voltage_gain) < 1e-3
    # Temperature: an offset per probe (σ 0.4 °C) drifting σ 0.2 °C a year; a probe is within ±0.5-1 °C, not exact.
    assert np.allclose(np.nanmean(temperature_error[first], axis=0), calibration.temperature_offset_c, atol=0.03)
    assert 0.15 < np.std(calibration.temperature_offset_c) < 0.8
    assert np.abs(np.nanmean(temperature_error[last], axis=0)).max() < 2.0
    # Seeded: the same seed draws the same errors, another seed others.
    again, _ = run_world(seed=3, days=0.1)
    other, _ = run_world(seed=4, days=0.1)
    assert np.array_equal(again.monitor.calibration.voltage_gain, calibration.voltage_gain)
    assert not np.allclose(other.monitor.calibration.voltage_gain, calibration.voltage_gain)


def test_the_room_has_its_own_probe_and_the_truth_is_kept(tmp_path):
    path = tmp_path / "rooms.duckdb"
    make_recording(path, preset="thailand-9x24", days=1, interval_s=600, seed=2)
    with duckdb.connect(str(path), read_only=True) as con:
        spread = con.execute("SELECT max(n) FROM (SELECT count(DISTINCT ambient_c) AS n FROM readings "
                             "GROUP BY site_id, timestamp)").fetchone()[0]
        per_site = np.array(con.execute("""
            SELECT avg(r.ambient_c - s.true_room_c), stddev(r.ambient_c - s.true_room_c)
            FROM readings r JOIN strings t USING (string_id)
                 JOIN string_readings s ON s.string_key = t.string_key AND s.timestamp = r.timestamp
            GROUP BY r.site_id""").fetchall())
    assert spread == 1  # one probe per room: every jar of a site reads the same air
    assert np.abs(per_site[:, 0]).max() < 2.0 and per_site[:, 0].std() > 0.1  # each probe its own offset
    assert (per_site[:, 1] < 0.2).all()  # plus 0.1 °C noise in 0.1 °C steps


def test_the_monitor_estimates_soc_by_counting_the_string_current():
    hour = 3600
    world, column = run_world(seed=5, days=1, interval_s=60, actions=[
        (10 * hour, lambda w: w.lose_input([0], "test")), (11 * hour, lambda w: w.restore_input([0], "test"))])
    estimate, truth, mode = column("soc_pct"), column("true_soc_pct"), column("mode")[:, 0]
    on_float = mode == 0
    assert (estimate[on_float] == 100.0).all()  # a floating string is full, as far as a monitor knows
    discharging = np.flatnonzero(mode == 3)
    end = discharging[-1]
    # After an hour at about 28 A from a ~120 Ah jar: about 23 % counted out of the rated capacity, per jar.
    counted = 100.0 - estimate[end]
    assert 15 < counted.min() <= counted.max() < 30
    assert np.abs(estimate[end] - truth[end]).max() > 0.5  # an estimate, not the truth
    assert (estimate[discharging[0]:end + 1].min(axis=1) <= 100.0).all()
    assert np.all(np.diff(estimate[discharging, 0]) <= 0.0)  # it only goes down while discharging


def test_a_module_of_four_jars_drops_out_as_nulls(tmp_path):
    spec = get_preset("single-string").model_copy(deep=True)
    spec.sites[0].comm_gaps_per_module_year = 2_000  # about 5 gaps a day across the string's 6 modules
    out = tmp_path / "gaps.duckdb"
    record_run(BatchRun(fleet=spec, out=out, seed=8, start=DEFAULT_START, end=DEFAULT_START + timedelta(days=2),
                        interval_s=60))
    with duckdb.connect(str(out), read_only=True) as con:
        groups = con.execute("""
            SELECT timestamp, list(position ORDER BY position) FROM readings r JOIN batteries b USING (battery_id)
            WHERE voltage_v IS NULL GROUP BY timestamp""").fetchall()
        partial = con.execute("""
            SELECT count(*) FROM readings WHERE voltage_v IS NULL AND (temperature_c IS NOT NULL OR current_a IS NOT
            NULL OR internal_resistance_mohm IS NOT NULL OR true_voltage_v IS NULL OR sensor_fault <> 0)""").fetchone()[0]
        events = con.execute("""
            SELECT count(*), sum(least((detail->>'duration_s')::DOUBLE, epoch((SELECT "end" FROM runs)) - epoch(timestamp)))
            FROM events WHERE kind = 'communication_gap'""").fetchone()
        missing = con.execute("SELECT count(*) FROM readings WHERE voltage_v IS NULL").fetchone()[0]
    assert events[0] >= 3 and len(groups) > 0
    for _, positions in groups:  # whole modules: positions 1-4, 5-8, ...
        modules = {(p - 1) // 4 for p in positions}
        assert len(positions) == 4 * len(modules)
    assert partial == 0  # every measured channel missing together; the truth and the fault label stay
    # The missing readings add up to what the events say: 4 jars for each minute of each gap (a tick either end).
    assert abs(missing - 4 * events[1] / 60) <= 4 * 2 * events[0]


def test_the_docstring_states_the_numbers_the_code_uses():
    doc = sensors.__doc__
    stated = {
        "σ 0.05 %": sensors.VOLTAGE_GAIN_SIGMA * 100, "2 mV": sensors.VOLTAGE_NOISE_V * 1000,
        "σ 0.4 °C": sensors.TEMPERATURE_OFFSET_SIGMA_C, "σ 0.2 °C a year": sensors.TEMPERATURE_DRIFT_SIGMA_C_PER_YEAR,
        "0.1 °C rms": sensors.TEMPERATURE_NOISE_C, "σ\n  0.5 °C": sensors.ROOM_PROBE_OFFSET_SIGMA_C,
        "error σ 1 %": sensors.RESISTANCE_GAIN_SIGMA * 100, "1 % rms": sensors.RESISTANCE_NOISE_FRACTION * 100,
        "σ 0.5 % of the": sensors.CURRENT_GAIN_SIGMA * 100, "σ 0.1 % of its": sensors.CURRENT_ZERO_SIGMA_FULL_SCALE * 100,
        "0.05 % of\n  full scale": sensors.CURRENT_NOISE_FULL_SCALE * 100, "0.01 A steps": sensors.CURRENT_RESOLUTION_A,
    }
    for phrase, value in stated.items():
        assert phrase in doc, phrase
        number = float(re.search(r"\d+(?:\.\d+)?", phrase.replace("σ", "")).group())
        assert number == pytest.approx(value), phrase


def test_what_the_monitor_does_not_have_is_null_in_every_column_never_nan(tmp_path):
    """A module with no data from the first tick has no SOH estimate yet either: NULL, like its readings."""
    from battsim.recordings.recorder import Recorder, RunInfo
    from battsim.recordings.run_config import RunConfig

    out = tmp_path / "dark.duckdb"
    fleet = build_fleet(get_preset("single-string"), seed=1)
    config = RunConfig(fleet={}, seed=1, interval_s=60)
    recorder = Recorder(out, fleet, RunInfo(1, DEFAULT_START, None, 60, config, "single-string"))
    world = World(fleet, recorder, seed=1, interval_s=60)
    start_us = int(DEFAULT_START.timestamp() * 1e6)
    world.monitor.add_gap(np.arange(4), start_us, start_us + 3_600_000_000)  # jars 1-4, the first hour
    world.run_until(3 * 3600)
    world.flush()
    recorder.close()
    with duckdb.connect(str(out), read_only=True) as con:
        dark = con.execute("SELECT count(*), count(soh_pct), count(voltage_v), count(true_soh_pct) FROM reading_samples "
                           "WHERE battery_key < 4 AND timestamp < (SELECT start FROM runs) + INTERVAL 55 MINUTE").fetchone()
        # Its SOH is estimated from its ohmic tests: none until one succeeds (the first, at the first tick, failed).
        untested = con.execute("SELECT count_if((soh_pct IS NULL) <> (internal_resistance_mohm IS NULL)), "
                               "count_if(battery_key >= 4 AND soh_pct IS NULL) FROM reading_samples").fetchone()
        nan = {}
        for table in ("reading_samples", "string_readings", "ohmic_tests"):
            floats = [name for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall() if kind == "FLOAT"]
            nan[table] = con.execute(f"SELECT {' + '.join(f'count_if(isnan({c}))' for c in floats)} "
                                     f"FROM {table}").fetchone()[0]
        summary = con.execute("SELECT count(*), count(min_voltage_v) FROM daily_battery_summary").fetchone()
    assert dark[0] == 4 * 55 and dark[1] == 0 and dark[2] == 0 and dark[3] == dark[0]  # the truth is kept
    assert untested == (0, 0)
    assert nan == {"reading_samples": 0, "string_readings": 0, "ohmic_tests": 0}
    assert summary[0] == summary[1] == 24  # the views skip what is missing
