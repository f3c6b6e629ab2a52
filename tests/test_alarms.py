"""Alarm rules: each raises on its condition, clears past its deadband, and keeps state otherwise."""

import numpy as np
import pytest
from tests.helpers import CollectingSink

from battsim.engine.alarms import RULES, AlarmMonitor, AlarmThresholds
from battsim.engine.battery import Mode
from battsim.engine.readings import ReadingBatch, ReadingBuffer

BASELINE_MOHM = np.array([4.0, 4.0, 4.0])
CELLS = np.array([6, 6, 6])
MINUTE_US = 60_000_000


def reading(**overrides):
    """Healthy jars on float in a 30 °C room; keyword arguments replace whole columns."""
    values = dict(voltage_v=np.full(3, 13.6), temperature_c=np.full(3, 25.0), resistance_mohm=BASELINE_MOHM.copy(),
                  soh_pct=np.full(3, 98.0), ambient_c=np.full(3, 30.0), mode=np.full(3, Mode.FLOAT, dtype=np.uint8))
    values.update(overrides)
    return values


def changes_of(monitor, minute, **overrides):
    return [(c.rule.name, c.jar, c.state) for c in monitor.evaluate(minute * MINUTE_US, **reading(**overrides))]


def test_healthy_jars_raise_nothing():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    for minute in range(10):
        assert changes_of(monitor, minute) == []
    assert monitor.active_alarms() == []


def test_high_temperature_needs_five_minutes_above_35c_and_clears_below_the_deadband():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    hot = np.array([36.0, 25.0, 25.0])
    for minute in range(5):
        assert changes_of(monitor, minute, temperature_c=hot) == []
    assert changes_of(monitor, 5, temperature_c=hot) == [("high_temperature", 0, "raised")]
    # 34.5 °C is below the threshold but inside the 1 °C deadband: still raised.
    assert changes_of(monitor, 6, temperature_c=np.array([34.5, 25, 25])) == []
    assert changes_of(monitor, 7, temperature_c=np.array([33.9, 25, 25])) == [("high_temperature", 0, "cleared")]


def test_a_dip_below_35c_restarts_the_five_minutes():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    for minute in range(4):
        changes_of(monitor, minute, temperature_c=np.array([36.0, 25, 25]))
    changes_of(monitor, 4, temperature_c=np.array([34.9, 25, 25]))
    for minute in range(5, 10):
        assert changes_of(monitor, minute, temperature_c=np.array([36.0, 25, 25])) == []
    assert changes_of(monitor, 10, temperature_c=np.array([36.0, 25, 25])) == [("high_temperature", 0, "raised")]


def test_low_voltage_only_on_float():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    low = np.array([11.9, 11.9, 13.6])
    discharging = np.array([Mode.FLOAT, Mode.DISCHARGE, Mode.FLOAT], dtype=np.uint8)
    assert changes_of(monitor, 0, voltage_v=low, mode=discharging) == [("low_float_voltage", 0, "raised"),
                                                                        ("on_battery", 1, "raised")]
    # Leaving float ends the condition.
    assert changes_of(monitor, 1, voltage_v=low, mode=np.full(3, Mode.BOOST, dtype=np.uint8)) == [
        ("low_float_voltage", 0, "cleared"), ("on_battery", 1, "cleared")]


def test_temperature_outside_10_to_50c_is_a_sensor_fault():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    changes = monitor.evaluate(0, **reading(temperature_c=np.array([9.0, 51.0, 25.0]), ambient_c=np.full(3, 45.0)))
    assert [(c.rule.name, c.jar, c.threshold) for c in changes] == [("sensor_fault", 0, 10.0), ("sensor_fault", 1, 50.0)]


def test_jar_more_than_10c_above_ambient():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    changes = monitor.evaluate(0, **reading(temperature_c=np.array([25.0, 35.5, 30.0]), ambient_c=np.full(3, 25.0)))
    # (jar 1 is also hot, but not yet for 5 minutes)
    assert [(c.rule.name, c.jar, c.value) for c in changes] == [("above_ambient", 1, 10.5)]


def test_resistance_20_percent_over_baseline_for_an_hour_and_soh_below_80():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    worn = np.array([4.0, 4.84, 4.7])
    assert changes_of(monitor, 0, resistance_mohm=worn, soh_pct=np.array([79.9, 80.0, 98])) == [
        ("low_soh", 0, "raised")]
    # A noisy reading over the line and back is not a worn jar: the hour starts again.
    assert changes_of(monitor, 30, resistance_mohm=BASELINE_MOHM * 1.1, soh_pct=np.array([79.9, 80, 98])) == []
    for minute in range(31, 91):
        assert changes_of(monitor, minute, resistance_mohm=worn, soh_pct=np.array([79.9, 80, 98])) == []
    assert changes_of(monitor, 91, resistance_mohm=worn, soh_pct=np.array([79.9, 80, 98])) == [
        ("high_resistance", 1, "raised")]
    # Back to +18.5 % (inside the 3 % deadband) keeps it; +16 % clears it.
    assert changes_of(monitor, 92, resistance_mohm=np.array([4.0, 4.74, 4.7]), soh_pct=np.array([80.5, 80, 98])) == []
    assert changes_of(monitor, 93, resistance_mohm=np.array([4.0, 4.64, 4.7]), soh_pct=np.array([81.0, 80, 98])) == [
        ("high_resistance", 1, "cleared"), ("low_soh", 0, "cleared")]


def test_a_missing_reading_leaves_alarms_as_they_were():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    changes_of(monitor, 0, soh_pct=np.array([70.0, 98, 98]))
    assert changes_of(monitor, 1, soh_pct=np.array([np.nan, 98, 98]), temperature_c=np.array([np.nan, 25, 25])) == []
    assert monitor.active_alarms() == [("low_soh", 0)]


def test_thresholds_are_configurable():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS, AlarmThresholds(high_temperature_c=30.0, high_temperature_delay_s=0))
    assert changes_of(monitor, 0, temperature_c=np.array([31.0, 25, 25])) == [("high_temperature", 0, "raised")]


def test_a_batch_of_ticks_gives_the_same_changes_as_tick_by_tick():
    rng = np.random.default_rng(3)
    ticks = 12
    temperature = 33.0 + 4.0 * rng.random((ticks, 3))
    temperature[2:9, 0] = 36.0  # jar 0 hot for 6 minutes
    voltage = 11.8 + 0.5 * rng.random((ticks, 3))
    buffer = ReadingBuffer(3, ticks)
    for tick in range(ticks):
        buffer.tick_view("timestamp_us")[:] = tick * MINUTE_US
        buffer.tick_view("voltage_v")[:] = voltage[tick]
        buffer.tick_view("temperature_c")[:] = temperature[tick]
        buffer.tick_view("internal_resistance_mohm")[:] = BASELINE_MOHM
        buffer.tick_view("soh_pct")[:] = 95.0
        buffer.tick_view("ambient_c")[:] = 30.0
        buffer.tick_view("mode")[:] = Mode.FLOAT
        buffer.commit_tick()
    batch: ReadingBatch = buffer.take()
    in_one = [(c.timestamp_us, c.rule.name, c.jar, c.raised) for c in AlarmMonitor(BASELINE_MOHM, CELLS).evaluate_batch(batch)]
    monitor, one_by_one = AlarmMonitor(BASELINE_MOHM, CELLS), []
    for tick in range(ticks):
        one_by_one += [(c.timestamp_us, c.rule.name, c.jar, c.raised) for c in monitor.evaluate(
            tick * MINUTE_US, voltage_v=voltage[tick].astype(np.float32), temperature_c=temperature[tick].astype(np.float32),
            resistance_mohm=BASELINE_MOHM.astype(np.float32), soh_pct=np.full(3, 95.0, np.float32),
            ambient_c=np.full(3, 30.0, np.float32), mode=np.full(3, Mode.FLOAT, np.uint8))]
    assert in_one == one_by_one
    assert any(rule == "high_temperature" for _, rule, _, _ in in_one)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_every_rule_has_a_severity_and_description(rule):
    assert rule.severity in ("warning", "critical") and rule.description


def alarm_events_of_a_hot_room(batch_rows: int):
    from battsim.engine.alarms import AlarmingSink
    from battsim.engine.fleet import build_fleet, get_preset
    from battsim.engine.world import World
    from battsim.scenarios import Scenarios

    fleet = build_fleet(get_preset("single-string"), seed=3)
    collected = CollectingSink()
    world = World(fleet, AlarmingSink(collected, fleet), seed=3, interval_s=60, batch_rows=batch_rows)
    Scenarios(world).apply("high_temperature", params={"ambient_c": 45.0}, duration_s=4 * 3600)
    world.run_until(10 * 3600)
    world.flush()
    return [(e.timestamp_us, e.kind, e.battery_id, e.detail["rule"]) for e in collected.events
            if e.kind.startswith("alarm_")], collected.rows


def test_an_alarming_sink_records_alarms_whatever_the_batch_size():
    one_tick, rows = alarm_events_of_a_hot_room(batch_rows=24)
    many_ticks, _ = alarm_events_of_a_hot_room(batch_rows=24 * 97)
    assert one_tick == many_ticks and rows == 24 * 600
    hot = [(kind, battery) for _, kind, battery, rule in one_tick if rule == "high_temperature"]
    assert ("alarm_raised", "BKK_DC1_SYS01_STR01_BAT001") in hot
    assert ("alarm_cleared", "BKK_DC1_SYS01_STR01_BAT001") in hot  # the room cools after 4 h


def test_on_battery_follows_the_rectifier_and_resistance_is_judged_on_float_only():
    monitor = AlarmMonitor(BASELINE_MOHM, CELLS)
    discharging = np.array([Mode.DISCHARGE, Mode.FLOAT, Mode.FLOAT], dtype=np.uint8)
    worn = BASELINE_MOHM * np.array([1.3, 1.0, 1.0])  # a discharging jar's resistance rises with depth
    assert changes_of(monitor, 0, mode=discharging, resistance_mohm=worn, voltage_v=np.array([12.2, 13.6, 13.6])) \
        == [("on_battery", 0, "raised")]
    disconnected = np.array([Mode.DISCONNECTED, Mode.FLOAT, Mode.FLOAT], dtype=np.uint8)
    assert changes_of(monitor, 1, mode=disconnected, resistance_mohm=worn) == []
    boosting = np.array([Mode.BOOST, Mode.FLOAT, Mode.FLOAT], dtype=np.uint8)
    assert changes_of(monitor, 2, mode=boosting) == [("on_battery", 0, "cleared")]
    change = monitor.evaluate(3 * MINUTE_US, **reading(mode=discharging))[0]
    assert change.detail()["threshold"] is None and change.detail()["value"] == 13.6
