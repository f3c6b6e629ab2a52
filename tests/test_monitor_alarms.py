"""Issue 15, point 6: an outage raises on_battery once per string (not once per jar); the alarm list and report follow."""

import duckdb
import numpy as np
import pytest
from tests.helpers import make_recording

from battsim.engine.alarms import RULES, AlarmMonitor
from battsim.engine.battery import Mode
from battsim.recordings.report import write_report
from battsim.scenarios.timeline import parse_timeline

OUTAGE = """
[[event]]
scenario = "power_outage"
at = "+6h"
duration = "1h"
sites = ["BKK_DC1", "CNX_DC1"]
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("alarms") / "outage.duckdb"
    make_recording(path, preset="thailand-9x24", days=0.5, interval_s=300, seed=9, timelines=[parse_timeline(OUTAGE)])
    return path


def test_one_on_battery_alarm_per_string_naming_the_string(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        alarms = con.execute("SELECT site_id, string_id, battery_id, cleared_at IS NOT NULL, value FROM alarms "
                             "WHERE rule = 'on_battery' ORDER BY string_id").fetchall()
        strings_v = con.execute("""SELECT t.string_id, s.voltage_v FROM string_readings s JOIN strings t USING (string_key)
                                   WHERE s.mode = 3 ORDER BY s.timestamp LIMIT 2""").fetchall()
    assert [row[:4] for row in alarms] == [("BKK_DC1", "BKK_DC1_SYS01_STR01", None, True),
                                           ("CNX_DC1", "CNX_DC1_SYS01_STR01", None, True)]
    # Its value is the string's voltage as the monitor read it (the sum of its jars), about the string channel's.
    by_string = dict(strings_v)
    assert alarms[0][4] == pytest.approx(by_string["BKK_DC1_SYS01_STR01"], abs=0.5)


def test_the_report_counts_alarms_per_string(recording, tmp_path):
    report = write_report(recording, tmp_path / "report")
    by_rule = dict(part.split(": ") for part in report.headline["Alarms by rule"].split(", "))
    assert by_rule["on_battery"] == "2"  # two strings on battery, not 48 jars


def test_the_rule_is_judged_once_per_string():
    jars_per_string, strings = 4, 3
    monitor = AlarmMonitor(np.full(12, 4.0), np.full(12, 6), jar_string=np.repeat(np.arange(strings), jars_per_string))
    mode = np.full(12, Mode.FLOAT, dtype=np.uint8)
    mode[4:8] = Mode.DISCHARGE
    voltage = np.full(12, 12.5)
    voltage[5] = np.nan  # a jar missing from the scan does not hide the string
    changes = monitor.evaluate(0, voltage, np.full(12, 25.0), np.full(12, 4.0), np.full(12, 99.0), np.full(12, 25.0),
                               mode)
    assert [(c.rule.name, c.jar, c.raised, c.value) for c in changes] == [("on_battery", 4, True, 37.5)]
    assert changes[0].rule.per_string and [r.name for r in RULES if r.per_string] == ["on_battery"]
