"""Issue 15, point 1: internal resistance is an ohmic test on a per-site schedule, on float only, not a per-tick reading."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from pydantic import ValidationError
from tests.helpers import make_recording

from battsim.engine.fleet import SiteSpec, get_preset
from battsim.engine.world import DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from battsim.scenarios.timeline import parse_timeline

BANGKOK = ZoneInfo("Asia/Bangkok")
# An outage over the second night's test hour (03:00 local): that string is not tested that night.
OUTAGE_AT_TEST_HOUR = """
[[event]]
scenario = "power_outage"
at = "2026-01-02T02:30"
duration = "1h"
sites = "all"
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("ohmic") / "three_days.duckdb"
    make_recording(path, days=3, seed=5, timelines=[parse_timeline(OUTAGE_AT_TEST_HOUR)])
    return path


def test_tests_run_at_the_first_scan_then_daily_at_the_local_hour_on_float_only(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        runs = con.execute("SELECT timestamp, count(*), count(DISTINCT battery_key) FROM ohmic_tests "
                           "WHERE instrument = 0 GROUP BY timestamp ORDER BY timestamp").fetchall()
    local = [(moment.astimezone(BANGKOK), jars, distinct) for moment, jars, distinct in runs]
    assert [moment for moment, _, _ in local] == [
        DEFAULT_START, DEFAULT_START + timedelta(hours=3), DEFAULT_START + timedelta(days=2, hours=3)]
    assert all(jars == distinct == 24 for _, jars, distinct in local)  # every jar of the string, once


def test_the_reading_holds_the_last_tests_value(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        mismatched, readings = con.execute("""
            SELECT count(*) FILTER (WHERE r.internal_resistance_mohm IS DISTINCT FROM t.resistance_mohm), count(*)
            FROM reading_samples r ASOF JOIN (SELECT * FROM ohmic_tests WHERE instrument = 0) t
                 ON r.battery_key = t.battery_key AND r.timestamp >= t.timestamp
            WHERE NOT isnan(r.voltage_v)""").fetchone()
        # Between tests the true resistance moves with temperature and charge; the reading does not.
        changes = con.execute("""
            SELECT count(DISTINCT internal_resistance_mohm) FROM reading_samples WHERE battery_key = 0""").fetchone()[0]
    assert readings > 0 and mismatched == 0
    assert changes == 3


def test_the_test_measures_the_truth_within_its_accuracy(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        error = np.array(con.execute("SELECT resistance_mohm / true_resistance_mohm - 1 FROM ohmic_tests").fetchall())
        current = con.execute("SELECT min(test_current_a), max(test_current_a) FROM ohmic_tests").fetchone()
    # Contact error σ 1 % per jar and 1 % repeatability: within ±6 %, and not exact.
    assert np.abs(error).max() < 0.06 and error.std() > 0.005
    assert 24 < current[0] <= current[1] < 36  # 0.25 C10 of a 120 Ah block (±20 % spread)


def test_the_load_step_shows_in_that_ticks_voltage(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        step = con.execute("""
            WITH v AS (SELECT battery_key, timestamp, true_voltage_v,
                              lag(true_voltage_v) OVER w AS before_v, lead(true_voltage_v) OVER w AS after_v
                       FROM reading_samples WINDOW w AS (PARTITION BY battery_key ORDER BY timestamp))
            SELECT (v.before_v + v.after_v) / 2 - v.true_voltage_v AS drop_v,
                   t.test_current_a * t.true_resistance_mohm / 1000 AS expected_v
            FROM v JOIN ohmic_tests t USING (battery_key, timestamp)
            WHERE t.timestamp > (SELECT min(timestamp) FROM ohmic_tests)""").fetchall()
        quiet = con.execute("""
            SELECT max(abs(true_voltage_v - lag_v)) FROM (SELECT true_voltage_v, lag(true_voltage_v) OVER
                (PARTITION BY battery_key ORDER BY timestamp) AS lag_v, timestamp FROM reading_samples)
            WHERE timestamp NOT IN (SELECT timestamp FROM ohmic_tests) AND timestamp - INTERVAL 1 MINUTE NOT IN
                  (SELECT timestamp FROM ohmic_tests) AND timestamp BETWEEN TIMESTAMPTZ '2026-01-01 12:00+07'
                  AND TIMESTAMPTZ '2026-01-01 23:00+07'""").fetchone()[0]
    drops, expected = np.array(step).T
    assert len(drops) == 48
    assert np.allclose(drops, expected, atol=0.01) and expected.min() > 0.08  # about 30 A × 4 mΩ = 0.12 V
    assert quiet < 0.02  # a tick without a test moves by far less


def test_a_site_tests_on_its_own_schedule_and_bad_schedules_are_refused(tmp_path):
    spec = get_preset("single-string").model_copy(deep=True)
    spec.sites[0].ohmic_test_every_days = 7
    spec.sites[0].ohmic_test_local_hour = 22
    out = tmp_path / "weekly.duckdb"
    record_run(BatchRun(fleet=spec, out=out, seed=2, start=DEFAULT_START, end=DEFAULT_START + timedelta(days=9),
                        interval_s=600))
    with duckdb.connect(str(out), read_only=True) as con:
        moments = [row[0].astimezone(BANGKOK) for row in con.execute(
            "SELECT DISTINCT timestamp FROM ohmic_tests ORDER BY 1").fetchall()]
    assert moments == [DEFAULT_START, DEFAULT_START + timedelta(hours=22), DEFAULT_START + timedelta(days=7, hours=22)]
    for field, value in (("ohmic_test_local_hour", 24), ("ohmic_test_every_days", 0)):
        with pytest.raises(ValidationError, match=field):
            SiteSpec(site_id="X", **{field: value})
