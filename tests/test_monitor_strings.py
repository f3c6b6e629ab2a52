"""Issue 15, point 2: string channels in their own table (one Hall current sensor, ripple, mode), and the jar view."""

import duckdb
import numpy as np
import pytest
from tests.helpers import make_recording

from battsim.scenarios.timeline import parse_timeline

OUTAGE = """
[[event]]
scenario = "power_outage"
at = "+10h"
duration = "1h"
sites = "all"
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("strings") / "outage_day.duckdb"
    make_recording(path, preset="thailand-9x24", days=1, interval_s=300, seed=7, timelines=[parse_timeline(OUTAGE)])
    return path


def test_one_row_per_string_per_tick_and_the_strings_table(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        strings, ticks = con.execute("SELECT count(*), (SELECT count(DISTINCT timestamp) FROM reading_samples) "
                                     "FROM strings").fetchone()
        rows, distinct = con.execute("SELECT count(*), count(DISTINCT (timestamp, string_key)) "
                                     "FROM string_readings").fetchone()
        scale = con.execute("SELECT min(current_full_scale_a), max(current_full_scale_a), min(jars) "
                            "FROM strings").fetchone()
    assert strings == 9 and rows == distinct == 9 * ticks == 9 * 288
    assert scale == (100.0, 150.0, 24)  # 1 C rounded up to 50 A: GS GPL12-100 100 A, CSB HX12-120 150 A


def test_the_string_voltage_is_its_jars_and_every_jar_reads_the_one_current_sensor(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        worst_sum, spread, worst_match = con.execute("""
            WITH jars AS (SELECT string_id, timestamp, sum(true_voltage_v) AS jars_v,
                                 max(current_a) - min(current_a) AS spread_a, max(current_a) AS jar_a
                          FROM readings GROUP BY ALL)
            SELECT max(abs(s.true_voltage_v - j.jars_v)), max(j.spread_a), max(abs(j.jar_a - s.current_a))
            FROM string_readings s JOIN strings t USING (string_key) JOIN jars j
                 ON j.string_id = t.string_id AND j.timestamp = s.timestamp""").fetchone()
    assert worst_sum < 0.01
    assert spread == 0 and worst_match == 0  # a series string has one current and one sensor


def test_the_hall_sensor_has_a_full_scale_error_and_follows_the_discharge(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        per_string = con.execute("""
            SELECT s.string_key, avg(s.current_a - s.true_current_a) AS offset_a, t.current_full_scale_a
            FROM string_readings s JOIN strings t USING (string_key) WHERE s.mode = 0 GROUP BY ALL
            ORDER BY s.string_key""").fetchall()
        discharge = con.execute("""
            SELECT max(abs(current_a / true_current_a - 1)), min(true_current_a) FROM string_readings
            WHERE mode = 3""").fetchone()
    offsets = np.array([row[1] for row in per_string])
    full_scale = np.array([row[2] for row in per_string])
    # Each sensor's own zero offset (σ 0.1 % of full scale), steady over the day: the strings disagree.
    assert np.abs(offsets / full_scale).max() < 0.005 and offsets.std() > 0.01
    assert discharge[1] < -20 and discharge[0] < 0.03  # ±0.5 % gain (σ) plus the offset, on ~28 A


def test_ripple_current_and_voltage(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        by_mode = dict(con.execute("""
            SELECT mode, avg(ripple_current_rms_a / abs(true_current_a)) FILTER (WHERE mode = 3)
            FROM string_readings GROUP BY mode""").fetchall())
        charging = con.execute("""
            SELECT min(ripple_current_rms_a), max(ripple_current_rms_a) FROM string_readings WHERE mode = 0""").fetchone()
        impedance = con.execute("""
            WITH r AS (SELECT string_id, timestamp, sum(true_internal_resistance_mohm) / 1000 AS ohm
                       FROM readings GROUP BY ALL)
            SELECT max(abs(s.ripple_voltage_rms_v / (s.true_ripple_current_rms_a * r.ohm) - 1))
            FROM string_readings s JOIN strings t USING (string_key) JOIN r
                 ON r.string_id = t.string_id AND r.timestamp = s.timestamp WHERE s.mode = 0""").fetchone()[0]
    assert by_mode[3] == pytest.approx(0.15, abs=0.01)  # the inverter's ripple: 15 % of the DC current
    assert 0.3 < charging[0] <= charging[1] < 4.0  # about 0.01 C10 from each rectifier
    assert impedance < 0.1  # ripple voltage = ripple current × the string's resistance (±2 % noise, 1 mV steps)


def test_the_view_joins_string_channels_to_jars(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        rows, readings, mismatched = con.execute("""
            SELECT count(*), (SELECT count(*) FROM readings),
                   count(*) FILTER (WHERE string_current_a IS DISTINCT FROM current_a) FROM jar_string_readings""").fetchone()
        # The world starts every jar at the air beside it (room + its place in the rack), which the view rebuilds.
        air = con.execute("SELECT max(abs(true_ambient_c - true_temperature_c)), count(DISTINCT true_ambient_c) "
                          "FROM jar_string_readings WHERE timestamp = (SELECT min(timestamp) FROM readings)").fetchone()
        columns = [row[0] for row in con.execute("DESCRIBE jar_string_readings").fetchall()]
    assert rows == readings and mismatched == 0
    assert air[0] < 0.01 and air[1] > 100  # per jar, not per room
    assert {"string_voltage_v", "ripple_current_rms_a", "ripple_voltage_rms_v", "battery_id"} <= set(columns)
