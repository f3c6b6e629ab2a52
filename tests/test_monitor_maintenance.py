"""Issue 15, point 4: capacity tests, impedance surveys, jar replacement after a failed test, and the rul labels."""

import duckdb
import numpy as np
import pytest
from tests.helpers import CollectingSink, make_recording

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import World
from battsim.scenarios import ScenarioError, Scenarios
from battsim.scenarios.timeline import parse_timeline

STRING = "BKK_DC1_SYS01_STR01"
MAINTENANCE = f"""
[[event]]
scenario = "capacity_test"
at = "+1d"
strings = ["{STRING}"]
params = {{ pass_pct = 99 }}

[[event]]
scenario = "impedance_survey"
at = "+3d"
sites = "all"
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("maintenance") / "tested.duckdb"
    make_recording(path, days=4, seed=3, timelines=[parse_timeline(MAINTENANCE)])
    return path


def test_a_capacity_test_discharges_the_string_to_its_end_voltage_and_records_the_ah(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        tests = con.execute("SELECT state, ah_delivered, capacity_pct, duration_s, passed, replaced "
                            "FROM capacity_tests").fetchall()
        rated = con.execute("SELECT rated_capacity_ah FROM strings").fetchone()[0]
        summary = con.execute("SELECT (detail->>'ah')::DOUBLE FROM events WHERE kind = 'discharge_summary'").fetchone()[0]
        causes = con.execute("SELECT DISTINCT detail->>'cause' FROM events WHERE kind LIKE 'outage_%'").fetchall()
        weakest = con.execute("""SELECT arg_min(battery_id, true_voltage_v) FROM readings WHERE timestamp =
                                 (SELECT max(timestamp) FROM readings WHERE mode = 'discharge')""").fetchone()[0]
        end_v = con.execute("SELECT (detail->>'voltage_v')::DOUBLE FROM events "
                            "WHERE kind = 'low_voltage_disconnect'").fetchone()[0]
    assert len(tests) == 1
    state, ah, capacity_pct, duration_s, passed, replaced = tests[0]
    assert state == "completed" and ah == pytest.approx(summary, abs=1e-3)
    assert capacity_pct == pytest.approx(100 * ah / rated, abs=1e-3)
    assert 80 < capacity_pct < 100 and 7 * 3600 < duration_s < 11 * 3600  # about 10 h at the 10-hour rate
    assert end_v == pytest.approx(1.80 * 6 * 24, abs=0.05)  # the test's end voltage, not the UPS's 1.75 V/cell
    assert causes == [("capacity_test",)]
    assert passed is False and weakest in replaced  # pass_pct 99: it fails; the jar that fell furthest goes


def test_a_failed_test_replaces_the_weak_jars_with_new_ones_on_the_same_positions(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        replaced = con.execute("SELECT replaced FROM capacity_tests").fetchone()[0]
        rows = con.execute("""
            SELECT n.battery_key, n.battery_id, n.position, n.replaces, n.installed_at, o.replaced_at, o.replaced_by,
                   o.position, n.string_id = o.string_id
            FROM batteries n JOIN batteries o ON o.battery_id = n.replaces ORDER BY n.battery_key""").fetchall()
        ended = con.execute("SELECT ended_at FROM capacity_tests").fetchone()[0]
        after_old = con.execute(f"""SELECT count(*) FROM readings WHERE battery_id IN
            ({", ".join(repr(r) for r in replaced)}) AND timestamp > ?""", [ended]).fetchone()[0]
        new_first = con.execute("""
            SELECT min(timestamp), arg_min(true_soh_pct, timestamp), count(*) FROM readings
            WHERE battery_id IN (SELECT battery_id FROM batteries WHERE replaces IS NOT NULL)""").fetchone()
        per_tick = con.execute("SELECT DISTINCT count(*) FROM reading_samples GROUP BY timestamp").fetchall()
    assert [row[3] for row in rows] == replaced
    for key, new_id, position, old_id, installed, removed, by, old_position, same_string in rows:
        assert key >= 24 and new_id == f"{old_id}_R1" and position == old_position and same_string
        assert installed == removed == ended and by == new_id
    assert after_old == 0 and new_first[0] > ended and new_first[1] == pytest.approx(100.0)
    assert per_tick == [(24,)]  # still 24 jars a tick: the slot reads its new jar


def test_an_impedance_survey_adds_handheld_rows_and_leaves_the_readings_alone(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        survey = con.execute("SELECT count(*), count(DISTINCT timestamp), max(abs(resistance_mohm / true_resistance_mohm "
                             "- 1)) FROM ohmic_tests WHERE instrument = 1").fetchone()
        moment = con.execute("SELECT min(timestamp) FROM ohmic_tests WHERE instrument = 1").fetchone()[0]
        held = con.execute("""
            SELECT count(DISTINCT internal_resistance_mohm) FROM reading_samples
            WHERE battery_key = 0 AND timestamp BETWEEN ? - INTERVAL 2 HOUR AND ? + INTERVAL 2 HOUR""",
                           [moment, moment]).fetchone()[0]
        active = con.execute("SELECT count(*) FROM events WHERE kind = 'scenario_cleared' "
                             "AND detail->>'scenario' = 'impedance_survey'").fetchone()[0]
    assert survey[0] == 24 and survey[1] == 1 and survey[2] < 0.05
    assert held == 1 and active == 1  # the monitor's held value is its own test's; the survey ends by itself


def test_a_string_not_resting_on_float_is_not_tested_and_bad_params_are_refused():
    sink = CollectingSink()
    world = World(build_fleet(get_preset("single-string"), seed=1), sink, seed=1)
    scenarios = Scenarios(world)
    world.run_until(600)
    world.lose_input([0], "grid")
    scenarios.apply("capacity_test", strings=[STRING])
    world.run_until(1200)
    skipped = [e for e in sink.events if e.kind == "capacity_test"]
    assert [e.detail["state"] for e in skipped] == ["skipped"] and "discharge" in skipped[0].detail["reason"]
    assert scenarios.active() == []
    with pytest.raises(ScenarioError, match="params.end_v_per_cell"):
        scenarios.apply("capacity_test", strings=[STRING], params={"end_v_per_cell": 2.5})


def test_rul_labels_days_to_end_of_life_and_censors_the_rest(tmp_path):
    path = tmp_path / "ageing.duckdb"
    # One jar fades fast enough to cross 80 % within the run; the others do not.
    timeline = parse_timeline(f"""
[[event]]
scenario = "battery_degradation"
at = "+1h"
batteries = ["{STRING}_BAT005"]
params = {{ fade_multiplier = 1000 }}
""")
    make_recording(path, days=6, interval_s=600, seed=4, timelines=[timeline])
    with duckdb.connect(str(path), read_only=True) as con:
        fast = con.execute(f"""SELECT day, days_to_end_of_life, censored, true_soh_pct, end_of_life_day FROM rul
                               WHERE battery_id = '{STRING}_BAT005' ORDER BY day""").fetchall()
        others = con.execute(f"""SELECT bool_and(censored), count(DISTINCT battery_id),
                                        bool_and(days_to_end_of_life = (SELECT max(day) FROM rul) - day)
                                 FROM rul WHERE battery_id <> '{STRING}_BAT005'""").fetchone()
        soh = con.execute(f"""SELECT min(day) FROM (SELECT timezone('Asia/Bangkok', timestamp)::DATE AS day
                              FROM readings WHERE battery_id = '{STRING}_BAT005' AND true_soh_pct < 80)""").fetchone()[0]
    assert fast and not any(row[2] for row in fast)
    assert fast[-1][0] == fast[-1][4] == soh and fast[-1][1] == 0  # the label counts down to the day it crossed
    assert [row[1] for row in fast] == list(range(len(fast) - 1, -1, -1))
    assert others == (True, 23, True)


def test_rul_of_a_replaced_jar_is_censored_at_its_replacement(recording):
    with duckdb.connect(str(recording), read_only=True) as con:
        replaced = con.execute("SELECT replaced FROM capacity_tests").fetchone()[0]
        rows = con.execute(f"SELECT battery_id, max(day), bool_and(censored) FROM rul WHERE battery_id IN "
                           f"({', '.join(repr(r) for r in replaced)}) GROUP BY ALL").fetchall()
        ended_day = con.execute("SELECT timezone('Asia/Bangkok', ended_at)::DATE FROM capacity_tests").fetchone()[0]
    assert len(rows) == len(replaced) and all(row[1] == ended_day and row[2] for row in rows)
    assert np.all([row[2] for row in rows])
