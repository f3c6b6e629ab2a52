"""The batch hot path's shortcuts give what the plain definitions give.

The engine and the monitor take shortcuts for speed (bench/bench_batch.py): the resistance ageing
factor from the straight piece each jar is on, the alarm walk over only the jars whose state can
change, the state-of-health trend as one gated multiply-add per tick. Each is checked here against
the plain definition on data that exercises every branch.
"""

import numpy as np
import pytest
from tests.helpers import CollectingSink

from battsim.engine import ageing
from battsim.engine.alarms import RULES, AlarmMonitor
from battsim.engine.battery import Mode
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.readings import ReadingBatch, ReadingBuffer
from battsim.engine.sensors import BatteryMonitor, SensorFault
from battsim.engine.world import World


def population(n, seed=0):
    return ageing.draw_ageing_population(np.random.default_rng(seed), np.full(n, 2.5), np.full(n, 1.3), n)


def test_the_straight_piece_is_the_interpolated_factor_on_every_piece():
    jars = population(4000)
    # Every knot interval, the knots themselves, new jars and jars past the last knot (40 points lost).
    soh = np.concatenate([np.random.default_rng(1).uniform(0.5, 100.0, 3980),
                          np.arange(100.0, 58.0, -2.0)[:20]])
    offset, slope, low, high = ageing.resistance_ageing_segment(soh, jars.resistance_coupling, jars.resistance_noise)
    assert ((soh > low) & (soh <= high)).all()
    expected = ageing.resistance_ageing_factor(soh, jars.resistance_coupling, jars.resistance_noise)
    np.testing.assert_allclose(np.maximum(offset + slope * (100.0 - soh), 1.0), expected, rtol=1e-13)
    # Anywhere else on the same piece too (the piece is what the bank keeps between steps).
    floor = np.where(np.isfinite(low), low, soh - 5.0)  # the last piece has no lower end
    inside = floor + (np.minimum(high, 100.0) - floor) * 0.37
    np.testing.assert_allclose(np.maximum(offset + slope * (100.0 - inside), 1.0),
                               ageing.resistance_ageing_factor(inside, jars.resistance_coupling, jars.resistance_noise),
                               rtol=1e-13)


def test_the_bank_follows_its_jars_onto_new_pieces():
    bank = World(build_fleet(get_preset("single-string"), 1), CollectingSink(), seed=1).bank
    for soh in (100.0, 99.3, 97.9, 91.0, 90.9, 61.0, 55.0, 30.0):
        bank.soh_pct = np.full(bank.size, soh)
        expected = ageing.resistance_ageing_factor(bank.soh_pct, bank.resistance_coupling, bank.resistance_noise)
        np.testing.assert_allclose(bank._resistance_ageing_factor(), expected, rtol=1e-13)
    bank.dry_out(np.array([2]))  # a sudden loss moves one jar across several knots
    expected = ageing.resistance_ageing_factor(bank.soh_pct, bank.resistance_coupling, bank.resistance_noise)
    np.testing.assert_allclose(bank._resistance_ageing_factor(), expected, rtol=1e-13)


def random_readings(ticks, jars, seed):
    """Readings that cross every rule's thresholds often, with missing values."""
    rng = np.random.default_rng(seed)
    shape = (ticks, jars)
    columns = {
        "timestamp_us": np.repeat(np.arange(ticks, dtype=np.int64) * 60_000_000, jars),
        "voltage_v": rng.uniform(11.7, 12.4, shape).astype(np.float32),
        "temperature_c": rng.uniform(8.0, 52.0, shape).astype(np.float32),
        "internal_resistance_mohm": rng.uniform(3.9, 5.2, shape).astype(np.float32),
        "soh_pct": rng.uniform(78.0, 82.0, shape).astype(np.float32),
        "ambient_c": rng.uniform(20.0, 40.0, shape).astype(np.float32),
        "mode": rng.choice([Mode.FLOAT, Mode.FLOAT, Mode.DISCHARGE, Mode.DISCONNECTED], shape).astype(np.uint8),
    }
    # Runs of ticks that hold a condition long enough to pass the held-for delays.
    columns["temperature_c"][: ticks // 2, : jars // 2] = 36.0
    columns["internal_resistance_mohm"][:, jars // 3:] = 5.0
    columns["mode"][:, jars // 3:] = Mode.FLOAT
    for name in ("voltage_v", "temperature_c", "internal_resistance_mohm"):
        columns[name][rng.random(shape) < 0.02] = np.nan
    return ReadingBatch({name: column.reshape(-1) for name, column in columns.items()}, 0, ticks)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_of_alarms_is_the_tick_by_tick_walk(seed):
    ticks, jars = 120, 30
    batch = random_readings(ticks, jars, seed)
    baseline, cells = np.full(jars, 4.0), np.full(jars, 6)
    in_batches = AlarmMonitor(baseline, cells)
    changes = [change for first in range(0, ticks, 50) for change in in_batches.evaluate_batch(
        ReadingBatch({name: column[first * jars:(first + 50) * jars] for name, column in batch.columns.items()},
                     first, min(50, ticks - first)))]
    by_tick = AlarmMonitor(baseline, cells)
    expected = []
    for tick in range(ticks):
        row = {name: column[tick * jars:(tick + 1) * jars] for name, column in batch.columns.items()}
        expected += by_tick.evaluate(int(row["timestamp_us"][0]), row["voltage_v"], row["temperature_c"],
                                     row["internal_resistance_mohm"], row["soh_pct"], row["ambient_c"], row["mode"])
    assert len(expected) > 200  # the data really moves the alarms
    assert {change.rule.name for change in expected} == {rule.name for rule in RULES}
    assert [(c.timestamp_us, c.rule, c.jar, c.raised, c.value, c.threshold) for c in changes] == [
        (c.timestamp_us, c.rule, c.jar, c.raised, c.value, c.threshold) for c in expected]
    np.testing.assert_array_equal(in_batches.active, by_tick.active)


def reference_soh_trend(implied, usable, trend, step):
    """The trend as first written: one masked update per tick."""
    estimate = np.empty_like(implied)
    for tick in range(len(implied)):
        now = implied[tick]
        first = np.isnan(trend) & ~np.isnan(now)
        trend[first] = now[first]
        trend += np.where(usable[tick], (now - trend) * step, 0.0)
        estimate[tick] = trend
    return estimate


def test_the_soh_trend_is_the_masked_update_with_missing_readings():
    jars, ticks = 12, 40
    monitor = BatteryMonitor([slice(0, jars)], [np.random.default_rng(3)], np.full(jars, 4.0), interval_s=3600.0)
    monitor.inject(np.array([4]), SensorFault.DROPOUT, 0, np.zeros(1), np.zeros(1))  # missing from the start
    buffer = ReadingBuffer(jars, ticks)
    rng = np.random.default_rng(4)
    for tick in range(ticks):
        buffer.tick_view("timestamp_us")[:] = tick * 3_600_000_000
        buffer.tick_view("true_voltage_v")[:] = 13.6
        buffer.tick_view("current_a")[:] = 0.02
        buffer.tick_view("true_temperature_c")[:] = rng.uniform(20.0, 30.0, jars)
        buffer.tick_view("internal_resistance_mohm")[:] = rng.uniform(4.0, 5.0, jars)
        buffer.tick_view("mode")[:] = np.where(rng.random(jars) < 0.3, Mode.DISCHARGE, Mode.FLOAT)
        buffer.commit_tick()
    batch = buffer.take()
    monitor.measure(batch)
    by_tick = (ticks, jars)
    columns = batch.columns
    factor = np.maximum(1.0 - 0.012 * (columns["temperature_c"] - 25.0), 0.5).reshape(by_tick)
    ratio = columns["internal_resistance_mohm"].reshape(by_tick) / factor / np.float32(4.0)
    implied = ageing.population_soh_from_resistance_pct(ratio).astype(np.float32)
    usable = (columns["mode"].reshape(by_tick) == Mode.FLOAT) & ~np.isnan(implied)
    expected = reference_soh_trend(implied, usable, np.full(jars, np.nan, dtype=np.float32), monitor.soh_trend_step)
    expected = np.clip(np.round(expected, 1), 0.0, 100.0)
    assert np.isnan(expected[:, 4]).all() and not np.isnan(expected[:, :4]).any()
    np.testing.assert_array_equal(columns["soh_pct"].reshape(by_tick), expected)
