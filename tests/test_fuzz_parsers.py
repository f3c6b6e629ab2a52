"""Fuzzing the parsers that turn user text into scenario actions: timelines, durations, repeats, fleet files.

The property throughout: any input either parses to something valid or raises our validation error with a
message, never another exception; and what parses can be used (its occurrences computed, installed and run).
The budget is BATTSIM_FUZZ_EXAMPLES examples per test (150 by default; ``make fuzz`` gives 2000), derandomized
so ``make test`` is deterministic.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.helpers import CollectingSink

from battsim.engine.fleet import FleetFileError, FleetSpec, build_fleet, get_preset, load_fleet_file
from battsim.engine.world import World
from battsim.scenarios import CATALOGUE, Scenarios, Timeline, TimelineError, shipped_timelines
from battsim.scenarios.controller import ScenarioError
from battsim.scenarios.timeline import REPEAT_HORIZON, parse_timeline, rule_text
from battsim.timeparse import MAX_DURATION_S, parse_duration

EXAMPLES = int(os.environ.get("BATTSIM_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
# Running a world per example costs more than parsing: a fifth of the budget.
RUNS = settings(FUZZ, max_examples=max(10, EXAMPLES // 5))
INSTALLED = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)

pytestmark = pytest.mark.fuzz


# ------------------------------------------------------------------------------------ writing TOML
def toml_value(value) -> str:
    """TOML for the values the strategies make (no TOML writer is installed)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in '"\\\x7f' else c for c in value)
        return f'"{escaped}"'
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{ " + ", ".join(f"{toml_value(str(key))} = {toml_value(item)}" for key, item in value.items()) + " }"


def toml_document(top: dict, events: list[dict], randoms: list[dict]) -> str:
    lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
    for kind, entries in (("event", events), ("random", randoms)):
        for entry in entries:
            lines.append(f"[[{kind}]]")
            lines += [f"{toml_value(str(key))} = {toml_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ strategies
units = st.sampled_from(["w", "d", "h", "min", "m", "s", "hours", "days", "minutes", "sec", "weeks", "parsecs", ""])
duration_texts = st.one_of(
    st.builds(lambda parts: "".join(f"{n}{u}" for n, u in parts),
              st.lists(st.tuples(st.one_of(st.integers(0, 10**12), st.floats(0, 1e6).map(lambda f: f"{f:.3f}")), units),
                       min_size=1, max_size=4)),
    st.builds(lambda d, h, m: f"P{d}DT{h}H{m}M", st.integers(0, 10**9), st.integers(0, 100), st.integers(0, 100)),
    st.text(max_size=20),
)
numbers = st.one_of(st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True))
durations = st.one_of(duration_texts, numbers)
datetimes = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
instants = st.one_of(
    datetimes.map(lambda d: d.isoformat(timespec="minutes")),
    datetimes, datetimes.map(datetime.date),
    st.builds(lambda d, offset: d.replace(tzinfo=None if offset is None else UTC).isoformat(), datetimes,
              st.one_of(st.none(), st.just(0))),
)
times_of_day = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70))
moments = st.one_of(times_of_day, duration_texts.map(lambda d: f"+{d}"), instants, st.times(), st.text(max_size=20))
rule_parts = st.fixed_dictionaries({}, optional={
    "FREQ": st.sampled_from(["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY", "NEVER"]),
    "INTERVAL": st.one_of(st.integers(-2, 2000).map(str), st.text(max_size=5)),
    "COUNT": st.integers(-1, 10**6).map(str),
    "BYDAY": st.lists(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU", "1MO", "-1FR", "XX"]),
                      min_size=1, max_size=3).map(",".join),
    "BYMONTH": st.lists(st.integers(0, 13), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    "BYMONTHDAY": st.lists(st.integers(-32, 32), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    "BYHOUR": st.lists(st.integers(0, 24), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    "BYMINUTE": st.lists(st.integers(0, 60), min_size=1, max_size=2).map(lambda v: ",".join(map(str, v))),
    "BYSECOND": st.lists(st.integers(0, 60), min_size=1, max_size=2).map(lambda v: ",".join(map(str, v))),
    "BYSETPOS": st.integers(-3, 3).map(str),
    "UNTIL": st.just("20270101T000000"),
    "DTSTART": st.just("20260101T000000"),
})
rules = st.one_of(
    rule_parts.map(lambda parts: ";".join(f"{k}={v}" for k, v in parts.items())),
    st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly", "Daily ", "RRULE:FREQ=DAILY", "sometimes"]),
    st.text(max_size=30),
)
targets = st.one_of(st.just("all"), st.just(["BKK_DC1"]), st.lists(st.text(max_size=8), max_size=2), st.integers())
param_values = st.one_of(numbers, st.text(max_size=8), st.booleans(), st.sampled_from(["stuck", "drift", "spike"]))
params = st.dictionaries(
    st.sampled_from(sorted({name for spec in CATALOGUE.values() for name in spec.params.model_fields} | {"x"})),
    param_values, max_size=3)
events = st.fixed_dictionaries(
    {"scenario": st.one_of(st.sampled_from(list(CATALOGUE)), st.text(max_size=10))},
    optional={"at": moments, "repeat": rules, "until": instants, "duration": durations, "params": params,
              "action": st.sampled_from(["apply", "clear", "explode"]), "sites": targets, "strings": targets,
              "batteries": targets, "name": st.text(max_size=30)},
)
# Entries that are mostly right, so that the fuzzing also reaches past the first refusal into expansion and runs.
valid_units = st.sampled_from(["w", "d", "h", "min", "s"])
plausible_events = st.fixed_dictionaries(
    {"scenario": st.sampled_from(list(CATALOGUE)),
     "at": st.one_of(st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),
                     st.builds(lambda n, u: f"+{n}{u}", st.integers(1, 10**6), valid_units),
                     st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30)).map(lambda d: d.isoformat()),
                     moments)},
    optional={"repeat": st.one_of(st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"]),
                                  st.builds(lambda f, d, h: f"FREQ={f};BYDAY={d};BYHOUR={h}",
                                            st.sampled_from(["HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
                                            st.sampled_from(["MO", "SA,SU", "1MO", "-1FR"]), st.integers(0, 23)),
                                  rules),
              "duration": st.one_of(st.builds(lambda n, u: f"{n}{u}", st.integers(1, 10**6), valid_units), durations),
              "until": st.one_of(st.dates(date(1970, 1, 2), date(2199, 12, 30)).map(str), instants),
              "params": st.one_of(st.just({}), params), "sites": st.one_of(st.just("all"), targets)},
)
events = st.one_of(plausible_events, events)
randoms = st.fixed_dictionaries(
    {"kind": st.sampled_from(["grid_outage", "hvac_fault", "battery_failure", "earthquake"])},
    optional={"rate_per_year": numbers, "duration_min": durations, "duration_max": durations, "mtbf": durations,
              "mttr": durations, "hazard_scale": numbers, "sites": targets},
)
tops = st.fixed_dictionaries({}, optional={
    "timezone": st.one_of(st.sampled_from(["UTC", "Asia/Bangkok", "Europe/Berlin", "America/St_Johns", "Mars/Olympus",
                                           "", "../../etc/passwd", "x" * 300]), st.text(max_size=20)),
    "name": st.text(max_size=20), "description": st.text(max_size=20), "colour": st.just("red")})
documents = st.builds(toml_document, tops, st.lists(events, max_size=3), st.lists(randoms, max_size=2))


def parsed(text: str) -> Timeline | None:
    """The timeline, or None after our validation error with a message; anything else fails the test."""
    try:
        return parse_timeline(text, source="fuzz")
    except TimelineError as error:
        assert str(error).startswith("fuzz") and len(str(error)) < 2_000
        return None


def check_usable(timeline: Timeline) -> None:
    """What parses can be expanded: occurrences aware, ascending, inside the horizon; durations in range."""
    for event in timeline.events:
        assert event.duration_s is None or 0 < event.duration_s <= MAX_DURATION_S
        moments = list(islice(event.occurrences(timeline.zone, INSTALLED), 30))
        assert all(moment.tzinfo is not None for moment in moments)
        assert all(a <= b for a, b in zip(moments, moments[1:]))
        if moments:
            assert moments[-1] - moments[0] <= REPEAT_HORIZON


# ------------------------------------------------------------------------------------ timelines
@FUZZ
@given(documents)
def test_any_timeline_document_parses_to_a_usable_timeline_or_raises_a_timeline_error(text):
    timeline = parsed(text)
    if timeline is not None:
        check_usable(timeline)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_a_timeline_error(text):
    parsed(text)


@FUZZ
@given(st.sampled_from(sorted(shipped_timelines())), st.data())
def test_mutated_shipped_timelines_parse_or_raise_a_timeline_error(name, data):
    text = shipped_timelines()[name].read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        text = text[:at] + data.draw(st.text(alphabet='[]{}"\'#=\n.,+0123456789dhT:-', max_size=6)) + text[at + cut:]
    timeline = parsed(text)
    if timeline is not None:
        check_usable(timeline)


@FUZZ
@given(st.integers(1, 5000), st.sampled_from([("[", "]"), ("{a = ", "}"), ("{a = [", "]}"), ("[{a = ", "}]")]))
def test_nesting_at_any_depth_is_parsed_or_refused_never_a_recursion_error(depth, brackets):
    opener, closer = brackets
    parsed(f"x = {opener * depth}1{closer * depth}\n")


SMALL_FLEET = build_fleet(get_preset("single-string"), 0)


@RUNS
@given(st.lists(events, min_size=1, max_size=3), st.lists(randoms, max_size=2))
def test_a_timeline_that_parses_installs_and_runs_without_killing_the_simulation(event_entries, random_entries):
    timeline = parsed(toml_document({}, event_entries, random_entries))
    if timeline is None:
        return
    world = World(SMALL_FLEET, CollectingSink(), seed=0, start=INSTALLED, interval_s=600)
    try:
        timeline.install(world, Scenarios(world))
    except TimelineError:
        return  # target ids this fleet does not have
    world.run_until(3 * 86_400)


# ------------------------------------------------------------------------------------ durations and repeats
@FUZZ
@given(st.one_of(durations, st.none(), st.booleans(), st.timedeltas(), st.lists(st.integers(), max_size=2)))
def test_any_duration_parses_into_range_or_raises_value_error(value):
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        assert str(error) and len(str(error)) < 300
    else:
        assert 0 < seconds <= MAX_DURATION_S


parts_strategy = st.tuples(*(st.integers(0, 500) for _ in range(5))).filter(any)


def seconds_of(weeks, days, hours, minutes, secs) -> int:
    return weeks * 604_800 + days * 86_400 + hours * 3_600 + minutes * 60 + secs


@FUZZ
@given(parts_strategy)
def test_duration_spellings_round_trip_to_the_same_seconds(parts):
    weeks, days, hours, minutes, secs = parts
    compact = "".join(f"{n}{u}" for n, u in zip(parts, ["w", "d", "h", "min", "s"]) if n)
    spaced = " ".join(f"{n} {u}" for n, u in zip(parts, ["weeks", "days", "hours", "minutes", "seconds"]) if n)
    iso = f"P{weeks}W{days}DT{hours}H{minutes}M{secs}S"
    total = seconds_of(*parts)
    assert parse_duration(compact) == parse_duration(spaced) == parse_duration(iso) == parse_duration(total) == total


@FUZZ
@given(parts_strategy, st.integers(0, 4), st.integers(1, 500))
def test_durations_grow_with_every_unit_added(parts, unit, extra):
    more = list(parts)
    more[unit] += extra
    text = lambda p: "".join(f"{n}{u}" for n, u in zip(p, ["w", "d", "h", "min", "s"]) if n)  # noqa: E731
    assert parse_duration(text(more)) > parse_duration(text(parts))


@FUZZ
@given(rules)
def test_any_repeat_is_a_checked_rule_or_a_value_error_and_checked_rules_stay_an_hour_apart(repeat):
    try:
        rule_text(repeat)
    except ValueError as error:
        assert str(error) and len(str(error)) < 600
        return
    try:
        timeline = parse_timeline(f'timezone = "UTC"\n[[event]]\nscenario = "heatwave"\nat = "2026-01-01T00:00"\n'
                                  f"repeat = {toml_value(repeat)}\n")
    except TimelineError:
        return
    moments = list(islice(timeline.events[0].occurrences(timeline.zone, INSTALLED), 50))
    assert all(b - a >= timedelta(hours=1) for a, b in zip(moments, moments[1:]))


# ------------------------------------------------------------------------------------ apply
@FUZZ
@given(st.one_of(numbers, st.text(max_size=5), st.none(), st.booleans()))
def test_apply_takes_a_duration_in_range_or_raises_scenario_error(duration_s):
    world = World(SMALL_FLEET, CollectingSink(), seed=0, interval_s=600)
    controller = Scenarios(world)
    try:
        controller.apply("heatwave", duration_s=duration_s)
    except ScenarioError as error:
        assert "duration_s" in str(error)
    world.run_until(3600)


# ------------------------------------------------------------------------------------ fleet files
fleet_sites = st.fixed_dictionaries({"site_id": st.one_of(st.just("S1"), st.text(max_size=6))}, optional={
    "name": st.text(max_size=6), "timezone": st.one_of(st.just("Asia/Bangkok"), st.text(max_size=10)),
    "strings": st.one_of(st.integers(-1, 10**6), numbers), "jars_per_string": st.one_of(st.integers(-1, 10**4), numbers),
    "model": st.text(max_size=8), "load_kw_per_string": numbers, "outages_per_year": numbers,
    "climate": st.dictionaries(st.sampled_from(["mean_c", "daily_swing_c", "x"]), numbers, max_size=2),
    "jars": st.lists(st.dictionaries(st.sampled_from(["battery_id", "profile", "initial_soh_pct"]),
                                     st.one_of(st.text(max_size=5), numbers), max_size=3), max_size=2),
})
fleet_documents = st.one_of(
    st.builds(lambda top, sites: toml_document(top, [], []) + "".join(
        "[[sites]]\n" + "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in site.items()) for site in sites),
        st.dictionaries(st.sampled_from(["name", "description", "profile_mix", "nope"]),
                        st.one_of(st.text(max_size=5), st.lists(numbers, max_size=3)), max_size=2),
        st.lists(fleet_sites, max_size=2)),
    st.text(max_size=200),
)


@FUZZ
@given(fleet_documents)
def test_any_fleet_file_loads_or_raises_a_fleet_file_error(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz-fleet.toml"
    path.write_text(text, encoding="utf-8")
    try:
        spec = load_fleet_file(path)
    except FleetFileError as error:
        assert str(error)
    else:
        assert isinstance(spec, FleetSpec)
