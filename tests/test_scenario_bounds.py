"""Every duration, offset, instant and repeat a timeline or scenario accepts is bounded, and the text itself.

Each case here was a crash, a hang or an overflow before the bounds (issue 11): a clear TimelineError or
ScenarioError naming the field and the allowed range now, so the CLI exits 2 and HTTP answers 422.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from tests.helpers import CollectingSink, make_recording
from typer.testing import CliRunner

from battsim.engine.failures import fail_jars
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import World
from battsim.scenarios import CATALOGUE, ScenarioError, Scenarios, TimelineError, load_timeline
from battsim.scenarios.controller import MAX_RESISTANCE_MULTIPLIER
from battsim.scenarios.timeline import MAX_ENTRIES, MAX_NESTING, MAX_TIMELINE_BYTES, parse_timeline
from battsim.service.cli import app
from battsim.timeparse import MAX_DURATION_S, parse_duration

BANGKOK = ZoneInfo("Asia/Bangkok")
HUNDRED_YEARS_S = 36_525 * 86_400


def single_string_world(preset: str = "single-string") -> tuple[World, Scenarios]:
    world = World(build_fleet(get_preset(preset), 0), CollectingSink(), seed=0)
    return world, Scenarios(world)


def event(**fields) -> str:
    return "[[event]]\n" + "".join(f"{key} = {value}\n" for key, value in {"scenario": '"heatwave"', **fields}.items())


def refused(text: str) -> str:
    with pytest.raises(TimelineError) as caught:
        parse_timeline(text)
    return str(caught.value)


# ------------------------------------------------------------------------------------ durations and offsets
@pytest.mark.parametrize("value", ["99999999999d", "36526d", "9" * 400 + "d", 1e300, 1e20, float("inf"),
                                   float("nan"), 0, -5, "0s", True])
def test_durations_beyond_100_years_zero_or_not_finite_are_refused(value):
    with pytest.raises(ValueError, match="100 years|not a duration"):
        parse_duration(value)


def test_the_longest_duration_is_100_years():
    assert parse_duration("36525d") == HUNDRED_YEARS_S == MAX_DURATION_S


def test_a_timeline_entry_at_plus_99999999999d_is_refused_when_loaded_not_inside_the_run():
    message = refused(event(at='"+99999999999d"'))
    assert "[[event]] #1 (heatwave): at:" in message and "100 years" in message


def test_an_offset_within_the_bound_installs_and_the_simulation_runs():
    timeline = parse_timeline(event(at='"+36000d"', duration='"36525d"'))
    world, controller = single_string_world()
    timeline.install(world, controller)
    world.run_until(3600)
    assert controller.active() == []


@pytest.mark.parametrize("duration_s", [1e300, 1e20, float("inf"), float("nan"), 0, -1, True, "7200"])
def test_apply_refuses_a_duration_s_out_of_range_naming_the_field(duration_s):
    world, controller = single_string_world()
    with pytest.raises(ScenarioError, match=r"duration_s: .* above 0 and at most 3155760000 \(100 years\)"):
        controller.apply("heatwave", duration_s=duration_s)
    assert controller.active() == []
    world.run_until(600)  # and the world runs on


def test_apply_accepts_the_longest_duration():
    world, controller = single_string_world()
    controller.apply("heatwave", duration_s=MAX_DURATION_S)
    world.run_until(600)
    assert controller.active()[0]["until"].startswith("2126-")


def test_a_duration_too_short_for_the_clock_does_not_kill_the_run():
    timeline = parse_timeline(event(at='"+1h"', duration="1e-300"))
    world, controller = single_string_world()
    timeline.install(world, controller)
    world.run_until(2 * 3600)
    assert controller.active() == []


# ------------------------------------------------------------------------------------ not-a-number
@pytest.mark.parametrize("text,field", [
    ('[[event]]\nscenario = "heatwave"\nat = "+1h"\nparams = { delta_c = nan }\n', "params.delta_c"),
    ('[[event]]\nscenario = "sensor_fault"\nat = "+1h"\nparams = { drift_c_per_h = -inf }\n', "params.drift_c_per_h"),
    ('[[random]]\nkind = "grid_outage"\nrate_per_year = nan\n', "rate_per_year"),
    ('[[random]]\nkind = "battery_failure"\nhazard_scale = nan\n', "hazard_scale"),
    ('[[event]]\nscenario = "heatwave"\nat = "+1h"\nduration = nan\n', "duration"),
    ('[[event]]\nscenario = "heatwave"\nat = "+1h"\nduration = inf\n', "duration"),
])
def test_nan_and_infinity_are_refused_naming_the_field(text, field):
    message = refused(text)
    assert f"{field}:" in message
    assert "finite" in message or "100 years" in message


# ------------------------------------------------------------------------------------ instants
@pytest.mark.parametrize("field,value", [
    ("at", '"9999-12-31T23:00"'), ("at", '"0001-01-01T00:00"'), ("at", "1969-12-31T00:00:00Z"), ("at", "2200-01-01"),
])
def test_date_times_outside_1970_to_2199_are_refused(field, value):
    message = refused(event(**{field: value}))
    assert f"{field}:" in message and "1970-2199" in message


def test_a_repeat_until_the_year_9999_is_refused():
    message = refused(event(at='"14:00"', repeat='"daily"', until='"9999-12-31"'))
    assert "until:" in message and "1970-2199" in message


# ------------------------------------------------------------------------------------ repeats
@pytest.mark.parametrize("rule,expected", [
    ("FREQ=SECONDLY", "at most hourly"), ("FREQ=MINUTELY;INTERVAL=5", "at most hourly"),
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL"), ("FREQ=DAILY;INTERVAL=99999999999", "INTERVAL"),
    ("FREQ=HOURLY;BYMINUTE=0,30", "BYMINUTE"), ("FREQ=DAILY;BYSECOND=1,2", "BYSECOND"),
    ("FREQ=DAILY;UNTIL=20260101", "until"), ("FREQ=DAILY\\nEXDATE:20260102", "RRULE"),
    ("BYDAY=MO", "FREQ"),
])
def test_repeats_finer_than_hourly_or_without_end_of_interval_are_refused(rule, expected):
    message = refused(event(at='"14:00"', repeat=f'"{rule}"'))
    assert "repeat:" in message and expected in message


def test_count_and_until_together_are_refused():
    assert "COUNT" in refused(event(at='"14:00"', repeat='"FREQ=DAILY;COUNT=3"', until='"2026-02-01"'))


def test_count_is_honoured():
    timeline = parse_timeline(event(at='"14:00"', repeat='"FREQ=DAILY;COUNT=3"'))
    moments = list(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=BANGKOK)))
    assert [m.day for m in moments] == [1, 2, 3]


def test_a_repeat_is_expanded_over_100_years_at_most():
    timeline = parse_timeline(event(at='"2026-04-10T00:00"', repeat='"yearly"'))
    moments = list(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=BANGKOK)))
    assert (moments[0].year, moments[-1].year, len(moments)) == (2026, 2126, 101)


# dateutil walks a rule that never matches period by period to the year 9999 (4.7 s for the daily one, 267 s for
# the hourly BYSETPOS one, where the hypothesis fuzzer met the last one); each is now refused within a second.
@pytest.mark.parametrize("rule", ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
                                  "FREQ=MONTHLY;BYMONTH=4;BYMONTHDAY=31", "FREQ=DAILY;BYSETPOS=3",
                                  "FREQ=HOURLY;BYSETPOS=2", "FREQ=HOURLY;BYMONTH=7;BYSETPOS=2;COUNT=83"])
def test_a_rule_that_never_matches_is_refused(rule):
    message = refused(event(at='"2026-01-01T00:00"', repeat=f'"{rule}"'))
    assert "repeat:" in message and "never matches" in message


@pytest.mark.parametrize("rule", ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
                                  "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=HOURLY;BYMONTH=7", "FREQ=DAILY;INTERVAL=1000"])
def test_rare_rules_that_match_are_taken_and_expanded(rule):
    timeline = parse_timeline(event(at='"2026-01-01T00:00"', repeat=f'"{rule}"'))
    assert next(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=BANGKOK)), None) is not None


def test_a_rule_that_never_matches_from_its_own_start_has_no_occurrence():
    # Monthly in February from 31 January: dateutil takes the day of the month from the start (the 31st).
    timeline = parse_timeline(event(at='"2026-01-31T10:00"', repeat='"FREQ=MONTHLY;BYMONTH=2"'))
    assert list(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=BANGKOK))) == []


def test_the_hourly_finest_repeat_is_an_hour_apart_in_utc():
    timeline = parse_timeline('timezone = "UTC"\n' + event(at='"00:15"', repeat='"FREQ=HOURLY;BYMINUTE=15"'))
    moments = list(islice(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=UTC)), 48))
    assert {b - a for a, b in zip(moments, moments[1:])} == {timedelta(hours=1)}


# ------------------------------------------------------------------------------------ random processes
def test_random_mtbf_shorter_than_an_hour_is_refused():
    assert "mtbf: '10min' is shorter than an hour" in refused('[[random]]\nkind = "hvac_fault"\nmtbf = "10min"\n')


def test_random_repairs_longer_than_100_years_are_cut_to_100_years_not_a_crash():
    # Exponential repairs with a 100-year mean exceed 100 years a third of the time: nine sites, all but surely.
    timeline = parse_timeline('[[random]]\nkind = "hvac_fault"\nmtbf = "1h"\nmttr = "36525d"\n')
    world, controller = single_string_world("thailand-9x24")
    timeline.install(world, controller)
    world.run_until(2 * 86_400)
    spans = [datetime.fromisoformat(a["until"]) - datetime.fromisoformat(a["since"]) for a in controller.active()]
    assert len(spans) == 9
    assert max(spans) == timedelta(seconds=MAX_DURATION_S)


# ------------------------------------------------------------------------------------ the text
def test_toml_nested_3000_deep_is_refused_not_a_recursion_error():
    for nested in ("[" * 3000 + "]" * 3000, "{a = " * 3000 + "1" + "}" * 3000):
        assert f"nested more than {MAX_NESTING} deep" in refused(f"x = {nested}\n")


def test_brackets_inside_strings_and_comments_are_not_nesting():
    deep = "[" * 100
    timeline = parse_timeline(f'description = "{deep}"\nname = \'{deep}\'\n# {deep}\n'
                              f'[[event]]\nname = """{deep}"""""\nscenario = "heatwave"\nat = "+1h"\n')
    assert timeline.description == deep


def test_a_10_mb_timeline_is_refused_at_once_by_its_size(tmp_path):
    text = event(at='"+1h"') * (10_000_000 // 40)
    assert f"larger than {MAX_TIMELINE_BYTES:,} bytes" in refused(text)
    path = tmp_path / "big.toml"
    path.write_text(text)
    with pytest.raises(TimelineError, match="big.toml: larger than 262,144 bytes"):
        load_timeline(path)


def test_more_than_the_most_entries_are_refused():
    assert len(parse_timeline(event(at='"+1h"') * MAX_ENTRIES).events) == MAX_ENTRIES
    assert f"at most {MAX_ENTRIES:,} [[event]] and [[random]] entries" in refused(event(at='"+1h"') * (MAX_ENTRIES + 1))


def test_errors_do_not_echo_the_input_back_in_bulk():
    junk = "x" * 100_000
    for text in (event(at=f'"{junk}"'), event(at='"+1h"', duration=f'"{junk}"'), f'timezone = "{junk}"\n',
                 event(at='"14:00"', repeat=f'"{junk}"'), event(name=f'"{junk}"', at='"25:00"')):
        assert len(refused(text)) < 600


@pytest.mark.parametrize("name", ["bad\x00name.toml", "x" * 5000])
def test_unreadable_timeline_paths_are_timeline_errors(name):
    with pytest.raises(TimelineError, match="cannot be read|no such timeline"):
        load_timeline(name)


def test_the_cli_refuses_an_out_of_range_timeline_with_exit_2(tmp_path):
    bad = tmp_path / "far.toml"
    bad.write_text(event(at='"+99999999999d"'))
    result = CliRunner().invoke(app, ["run", "--preset", "single-string", "--days", "1", "--out",
                                      str(tmp_path / "x.duckdb"), "--timeline", str(bad)])
    assert result.exit_code == 2
    assert "far.toml" in result.output and "100 years" in result.output
    assert not (tmp_path / "x.duckdb").exists()


# ------------------------------------------------------------------------------------ parameters at their bounds
def _bound(info, low: bool):
    for constraint in info.metadata:
        for name in (("ge", "gt") if low else ("le", "lt")):
            value = getattr(constraint, name, None)
            if value is not None:
                nudge = 0.0 if name in ("ge", "le") else 1e-3 * max(abs(value), 1.0)  # just inside an open bound
                return value + nudge if low else value - nudge
    return None


def extreme_params(name: str, low: bool) -> dict:
    params = {}
    for field, info in CATALOGUE[name].params.model_fields.items():
        if field == "fault":
            params[field] = "drift" if low else "spike"
        elif (value := _bound(info, low)) is not None:
            params[field] = value
    return params


def _toml(params: dict) -> str:
    return "{ " + ", ".join(f'{key} = {value!r}'.replace("'", '"') for key, value in params.items()) + " }"


@pytest.mark.parametrize("low", [True, False], ids=["lowest", "highest"])
@pytest.mark.parametrize("name", [name for name in CATALOGUE if name != "normal_operation"])
def test_every_scenario_at_its_extreme_params_keeps_every_reading_finite_for_a_day(tmp_path, name, low):
    """Applied twice (a repeated request must not compound), with an outage on top, under numpy errors raised:
    an overflow or a NaN anywhere in the physics fails the run, and SQL finds no non-finite reading."""
    params = extreme_params(name, low)
    timeline = "".join(f'[[event]]\nscenario = "{name}"\nat = "+{at}"\nparams = {_toml(params)}\n' for at in ("1h", "2h"))
    timeline += '[[event]]\nscenario = "power_outage"\nat = "+20h"\nduration = "1h"\n'
    path = tmp_path / "extreme.duckdb"
    with np.errstate(all="raise"):
        make_recording(path, days=1, interval_s=300, timelines=[load_timeline(timeline)])
    con = duckdb.connect(str(path), read_only=True)
    columns = ["voltage_v", "current_a", "temperature_c", "internal_resistance_mohm", "soh_pct", "soc_pct",
               "ambient_c", "true_voltage_v", "true_temperature_c", "true_soh_pct"]
    finite = " AND ".join(f"({column} IS NULL OR isfinite({column}))" for column in columns)
    rows, bad = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT ({finite})) FROM readings").fetchone()
    applied = con.execute("SELECT count(*) FROM events WHERE kind = 'scenario_applied'").fetchone()[0]
    assert rows == 24 * 288 and bad == 0 and applied == 3
    # Physically meaningful, not merely finite: no jar outside what a battery room and a runaway make.
    low_c, high_c = con.execute("SELECT min(true_temperature_c), max(true_temperature_c) FROM readings").fetchone()
    assert -15 < low_c and high_c < 90


@pytest.mark.parametrize("name,params,field", [
    ("thermal_runaway", {"dry_out_multiplier": 401}, "dry_out_multiplier"),
    ("thermal_runaway", {"float_current_multiplier": 100_000}, "float_current_multiplier"),  # the old name, still read
    ("thermal_runaway", {"charge_cutoff_c": 200}, "charge_cutoff_c"),
    ("battery_degradation", {"fade_multiplier": 1001}, "fade_multiplier"),
])
def test_runaway_and_degradation_params_beyond_their_bounds_are_refused_naming_the_field(name, params, field):
    world, controller = single_string_world()
    with pytest.raises(ScenarioError, match=rf"params.{field}: .*less than or equal to"):
        controller.apply(name, params=params)
    assert controller.active() == [] and (world.bank.float_current_multiplier == 1.0).all()


def test_repeated_applications_take_the_strongest_not_the_product_and_clearing_restores_the_failures_share():
    world, controller = single_string_world()
    fail_jars(world, "dry_out", [3])  # a failure's share of the same cause
    after_failure = world.bank.float_current_multiplier.copy()
    for _ in range(5):
        controller.apply("thermal_runaway", params={"dry_out_multiplier": 400})
        controller.apply("battery_degradation", params={"fade_multiplier": 1000})
    controller.apply("thermal_runaway", params={"dry_out_multiplier": 150})
    np.testing.assert_allclose(world.bank.float_current_multiplier, after_failure * 400)
    assert world.bank.fade_multiplier.max() <= 1000 * 2 * 6.5  # at most the bound times a jar's own (failures, profile)
    controller.clear()
    np.testing.assert_allclose(world.bank.float_current_multiplier, after_failure)


def test_stacked_resistance_drifts_stop_at_ten_times_the_new_value():
    world, controller = single_string_world()
    for _ in range(5):
        controller.apply("resistance_drift", params={"rise_pct": 1000, "over_h": 1})
    world.run_until(3 * 3600)
    assert world.bank.resistance_multiplier.max() == pytest.approx(MAX_RESISTANCE_MULTIPLIER)
    assert not world.resistance_drift_per_s.any()
    controller.apply("battery_degradation", params={"resistance_rise_pct_per_day": 100})
    world.run_until(5 * 86_400)
    assert world.bank.resistance_multiplier.max() == pytest.approx(MAX_RESISTANCE_MULTIPLIER)
