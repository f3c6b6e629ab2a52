"""Timelines: scheduled events in local time through DST, random events, errors, the CLI.

The done-when checks run real recordings (record_run into tmp_path) and ask them in SQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from tests.helpers import CollectingSink, regional_draws
from typer.testing import CliRunner

from battsim.engine.fleet import FleetSpec, build_fleet, get_preset
from battsim.engine.physics import SECONDS_PER_YEAR
from battsim.engine.world import DEFAULT_START, World
from battsim.recordings.batch import BatchRun, record_run
from battsim.scenarios import (
    Scenarios,
    TimelineError,
    load_timeline,
    shipped_timelines,
)
from battsim.service.cli import app
from battsim.timeparse import parse_duration

BANGKOK = ZoneInfo("Asia/Bangkok")


def record(path, timelines, preset="thailand-9x24", start=DEFAULT_START, days=3.0, seed=0, fleet=None):
    run = BatchRun(fleet=fleet or get_preset(preset), out=path, seed=seed, start=start,
                   end=start + timedelta(days=days), preset=preset, timelines=list(timelines))
    return record_run(run)


# ------------------------------------------------------------------------------------ done when
NINE_BY_24 = get_preset("thailand-9x24")


def test_daily_outage_discharges_every_string_14_to_16_bangkok_then_boost_then_float(tmp_path):
    path = tmp_path / "daily.duckdb"
    record(path, [load_timeline(shipped_timelines()["daily-outage"])], days=3)
    with duckdb.connect(str(path), read_only=True) as con:
        # Each reading covers the interval that ends at its timestamp: the outage's are (14:00, 16:00].
        per_day = con.execute("""
            SELECT string_id, timezone('Asia/Bangkok', timestamp)::DATE AS day,
                   count(*) FILTER (WHERE mode = 'discharge') AS discharge,
                   min(timezone('Asia/Bangkok', timestamp)) FILTER (WHERE mode = 'discharge') AS first,
                   max(timezone('Asia/Bangkok', timestamp)) FILTER (WHERE mode = 'discharge') AS last,
                   count(*) FILTER (WHERE mode = 'disconnected') AS disconnected
            FROM readings WHERE battery_id LIKE '%_BAT001' GROUP BY ALL ORDER BY ALL""").fetchall()
        assert len(per_day) == 9 * 3
        for string_id, day, discharge, first, last, disconnected in per_day:
            assert (discharge, disconnected) == (120, 0), (string_id, day)
            assert first == datetime.combine(day, datetime.min.time()).replace(hour=14, minute=1)
            assert last == datetime.combine(day, datetime.min.time()).replace(hour=16)
        # After each outage: boost from the next reading, then float before the next day's outage.
        story = con.execute("""
            WITH modes AS (
                SELECT string_id, timestamp, mode,
                       lag(mode) OVER (PARTITION BY string_id ORDER BY timestamp) AS before
                FROM readings WHERE battery_id LIKE '%_BAT001')
            SELECT string_id, strftime(timezone('Asia/Bangkok', timestamp), '%H:%M'), before, mode
            FROM modes WHERE mode <> before AND mode <> 'equalize' AND before <> 'equalize'
            ORDER BY string_id, timestamp""").fetchall()
        for string_id in NINE_BY_24_STRINGS:
            transitions = [(hhmm, before, mode) for s, hhmm, before, mode in story if s == string_id]
            # The last boost may still be tapering when the recording ends 8 h later (recharging the
            # 100 Ah jars' 2 h outage takes about 9 h at the 0.1 C10 limit).
            cycles = [("float", "discharge"), ("discharge", "boost"), ("boost", "float")] * 3
            assert [(b, m) for _, b, m in transitions] in (cycles, cycles[:-1]), string_id
            assert [hhmm for hhmm, b, _ in transitions if b in ("float", "discharge")] == ["14:01", "16:01"] * 3
        outages = con.execute("""
            SELECT kind, strftime(timestamp AT TIME ZONE 'UTC', '%H:%M:%S'), count(*), count(DISTINCT string_id)
            FROM events WHERE kind IN ('outage_start', 'outage_end') GROUP BY ALL ORDER BY ALL""").fetchall()
        assert outages == [("outage_end", "09:00:00", 27, 9), ("outage_start", "07:00:00", 27, 9)]


NINE_BY_24_STRINGS = build_fleet(NINE_BY_24, 0).string_ids


def test_daily_outage_events_are_at_07_utc_and_mask_the_discharge(tmp_path):
    """What holds at any site load: the schedule, the events, and the scenario bit on the outage readings."""
    path = tmp_path / "daily.duckdb"
    record(path, [load_timeline(shipped_timelines()["daily-outage"])], preset="single-string", days=3)
    with duckdb.connect(str(path), read_only=True) as con:
        starts = con.execute("""
            SELECT strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') FROM events
            WHERE kind = 'outage_start' ORDER BY timestamp""").fetchall()
        assert [row[0] for row in starts] == ["2026-01-01 07:00:00", "2026-01-02 07:00:00", "2026-01-03 07:00:00"]
        applied = con.execute("""
            SELECT count(*), min(detail->>'scenario'), min(site_id) FROM events WHERE kind = 'scenario_applied'
        """).fetchone()
        assert applied == (3, "power_outage", "BKK_DC1")
        bit = con.execute("SELECT bit FROM scenario_catalogue WHERE scenario = 'power_outage'").fetchone()[0]
        masked = con.execute(f"""
            SELECT min(strftime(timezone('Asia/Bangkok', timestamp), '%H:%M')),
                   max(strftime(timezone('Asia/Bangkok', timestamp), '%H:%M')), count(*)
            FROM readings WHERE scenario_mask & {1 << bit} <> 0""").fetchone()
        assert masked == ("14:01", "16:00", 3 * 120 * 24)


def test_berlin_timeline_fires_at_14_local_on_both_sides_of_the_dst_change(tmp_path):
    timeline = load_timeline("""
        timezone = "Europe/Berlin"
        [[event]]
        scenario = "power_outage"
        at = "14:00"
        repeat = "daily"
        duration = "30min"
    """)
    path = tmp_path / "berlin.duckdb"
    # The last Sunday of March 2026 is the 29th: clocks go from 02:00 CET to 03:00 CEST.
    record(path, [timeline], preset="single-string", start=datetime(2026, 3, 27, tzinfo=ZoneInfo("UTC")), days=4)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("""
            SELECT strftime(timestamp AT TIME ZONE 'UTC', '%m-%d %H:%M'),
                   strftime(timezone('Europe/Berlin', timestamp), '%H:%M')
            FROM events WHERE kind = 'outage_start' ORDER BY timestamp""").fetchall()
        discharge = con.execute("""
            SELECT strftime(timezone('Europe/Berlin', min(timestamp)), '%H:%M'), count(*)
            FROM readings WHERE mode = 'discharge' AND battery_id LIKE '%_BAT001'
            GROUP BY timezone('Europe/Berlin', timestamp)::DATE ORDER BY 1""").fetchall()
    assert rows == [("03-27 13:00", "14:00"), ("03-28 13:00", "14:00"), ("03-29 12:00", "14:00"),
                    ("03-30 12:00", "14:00")]
    assert discharge == [("14:01", 30)] * 4


def test_same_timeline_and_seed_give_identical_recordings_including_random_events(tmp_path):
    timeline = load_timeline("""
        [[random]]
        kind = "grid_outage"
        rate_per_year = 300          # often enough to see several in two days
        [[random]]
        kind = "hvac_fault"
        mtbf = "2d"
        mttr = "3h"
        [[event]]
        scenario = "sensor_fault"
        at = "+20h"
        duration = "6h"
        batteries = ["HKT_DC1_SYS01_STR01_BAT003"]
        params = { fault = "spike" }
    """)
    hashes = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        path = tmp_path / f"{name}.duckdb"
        record(path, [timeline], days=2, seed=seed)
        with duckdb.connect(str(path), read_only=True) as con:
            hashes.append(con.execute("""
                SELECT (SELECT sum(hash(r)::HUGEINT) FROM reading_samples r),
                       (SELECT sum(hash(e)::HUGEINT) FROM events e),
                       (SELECT count(*) FROM events WHERE detail->>'source' LIKE 'random%grid%'),
                       (SELECT count(*) FROM events WHERE kind = 'hvac_fault')""").fetchone())
    assert hashes[0] == hashes[1]
    assert hashes[0][2] > 5 and hashes[0][3] > 0  # the random events really happened
    assert hashes[2][:2] != hashes[0][:2]  # and another seed gives another recording


def test_a_sites_random_outages_do_not_depend_on_the_rest_of_the_fleet():
    timeline = load_timeline('[[random]]\nkind = "grid_outage"\nrate_per_year = 100\n')

    def outage_times(spec: FleetSpec) -> list[int]:
        sink = CollectingSink()
        world = World(build_fleet(spec, 3), sink, seed=3, interval_s=3600)
        timeline.install(world, Scenarios(world))
        world.run_until(15 * 86_400)  # four outages at Phuket, forty in the fleet (each costs its discharge's physics)
        return [e.timestamp_us for e in sink.events if e.kind == "outage_start" and e.site_id == "HKT_DC1"]

    full = outage_times(get_preset("thailand-9x24"))
    alone = outage_times(get_preset("thailand-9x24").model_copy(
        update={"sites": [s for s in get_preset("thailand-9x24").sites if s.site_id == "HKT_DC1"]}))
    assert len(full) >= 3
    assert full == alone


# Failures striking jars already struck once took a jar's last capacity (test_physics_runaway has that case alone).
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_random_battery_failures_strike_only_the_target_sites_and_repeat_with_the_seed():
    timeline = load_timeline('[[random]]\nkind = "battery_failure"\nsites = ["BKK_DC1", "HKT_DC1"]\n'
                             'hazard_scale = 300\n')

    def failures(seed: int) -> list[tuple[int, str, str]]:
        sink = CollectingSink()
        world = World(build_fleet(get_preset("thailand-9x24"), seed), sink, seed=seed, interval_s=3600)
        timeline.install(world, Scenarios(world))
        world.run_until(20 * 86_400)  # about a dozen failures at 300 times the profiles' hazard
        return [(e.timestamp_us, e.battery_id, e.detail["failure"]) for e in sink.events
                if e.kind == "battery_failure"]

    first = failures(seed=4)
    assert len(first) >= 3
    assert {battery[:7] for _, battery, _ in first} <= {"BKK_DC1", "HKT_DC1"}
    assert failures(seed=4) == first
    assert failures(seed=5) != first


def test_random_outages_follow_the_regional_rate_and_last_30_to_90_minutes():
    years = 30  # about 1,100 outages over the nine sites
    sites = get_preset("thailand-9x24").sites
    drawn = {site.site_id: regional_draws(site, seed=11, years=years) for site in sites}
    for site in sites:  # a Poisson count per site: within four standard deviations of its mean
        expected = site.outages_per_year * years
        assert abs(len(drawn[site.site_id]) - expected) < 4.0 * expected ** 0.5, (site.site_id, len(drawn[site.site_id]))
    # Phuket's grid (8 a year) fails more often than Chiang Mai's (2 a year).
    assert len(drawn["HKT_DC1"]) > 2 * len(drawn["CNX_DC1"])
    durations_min = np.array([down_s / 60 for outages in drawn.values() for _, down_s in outages])
    assert 30 <= durations_min.min() and durations_min.max() <= 90
    # Uniform on 30-90 min: mean 60, standard deviation 60 / sqrt(12) per outage.
    assert abs(durations_min.mean() - 60) < 4.0 * (60 / 12 ** 0.5) / len(durations_min) ** 0.5


def test_a_default_random_outage_timeline_plays_each_sites_regional_draws():
    timeline = load_timeline('[[random]]\nkind = "grid_outage"\n')
    sink = CollectingSink()
    # What the world does with the draws, not the physics: each site's string cut to one healthy jar carrying its
    # share of the load, daily ticks (the physics still sub-steps every discharge and recharge, the cost).
    full = get_preset("thailand-9x24")
    sites = [site.model_copy(update={"jars_per_string": 1, "load_kw_per_string": site.load_kw_per_string / 24})
             for site in full.sites]
    spec = full.model_copy(update={"profile_mix": (1.0, 0.0, 0.0), "sites": sites})
    world = World(build_fleet(spec, 11), sink, seed=11, interval_s=86_400)
    timeline.install(world, Scenarios(world))
    years = 0.1  # five weeks: four outages at three sites
    world.run_until(years * SECONDS_PER_YEAR)
    starts, played = {}, {site.site_id: [] for site in sites}
    for event in sink.events:
        seconds = (event.timestamp_us - world.start_us) / 1e6
        if event.kind == "outage_start":
            starts[event.string_id] = seconds
        elif event.kind == "outage_end":
            start_s = starts.pop(event.string_id)
            played[event.site_id].append((start_s, seconds - start_s))
    assert sum(len(outages) for outages in played.values()) >= 3
    for site in sites:
        expected = regional_draws(site, seed=11, years=years)
        assert len(played[site.site_id]) == len(expected), site.site_id
        for (start_s, down_s), (drawn_start_s, drawn_down_s) in zip(played[site.site_id], expected):
            assert start_s == pytest.approx(drawn_start_s, abs=1e-3) and down_s == pytest.approx(drawn_down_s, abs=1e-3)


# ------------------------------------------------------------------------------------ schedules
def occurrences(text: str, installed: datetime, count: int) -> list[str]:
    timeline = load_timeline(text)
    moments = timeline.events[0].occurrences(timeline.zone, installed)
    return [next(moments).astimezone(timeline.zone).isoformat() for _ in range(count)]


def test_weekly_rrule_and_until_and_relative_times():
    monday = occurrences('[[event]]\nscenario = "heatwave"\nat = "09:30"\nrepeat = "FREQ=WEEKLY;BYDAY=MO"\n',
                         datetime(2026, 1, 1, tzinfo=BANGKOK), 2)
    assert monday == ["2026-01-05T09:30:00+07:00", "2026-01-12T09:30:00+07:00"]
    timeline = load_timeline('[[event]]\nscenario = "heatwave"\nat = "06:00"\nrepeat = "daily"\n'
                             'until = "2026-01-03"\n')
    moments = list(timeline.events[0].occurrences(timeline.zone, datetime(2026, 1, 1, tzinfo=BANGKOK)))
    assert [m.day for m in moments] == [1, 2, 3]
    assert occurrences('[[event]]\nscenario = "heatwave"\nat = "+2d10h"\n', datetime(2026, 1, 1, tzinfo=BANGKOK),
                       1) == ["2026-01-03T10:00:00+07:00"]
    # A one-off time of day already past today is tomorrow's.
    assert occurrences('[[event]]\nscenario = "heatwave"\nat = "08:00"\n',
                       datetime(2026, 1, 1, 9, tzinfo=BANGKOK), 1) == ["2026-01-02T08:00:00+07:00"]


def test_an_outage_under_way_when_the_run_starts_runs_its_remaining_time():
    timeline = load_timeline('[[event]]\nscenario = "power_outage"\nat = "2026-01-01T13:00"\nduration = "2h"\n')
    sink = CollectingSink()
    world = World(build_fleet(get_preset("single-string"), 0), sink,
                  start=datetime(2026, 1, 1, 14, tzinfo=BANGKOK))
    timeline.install(world, Scenarios(world))
    world.run_until(3 * 3600)
    kinds = [(e.kind, e.timestamp_us) for e in sink.events if e.kind.startswith("outage")]
    assert [k for k, _ in kinds] == ["outage_start", "outage_end"]
    assert (kinds[1][1] - kinds[0][1]) / 1e6 == 3600


def test_a_clear_action_ends_an_open_ended_scenario():
    timeline = load_timeline("""
        [[event]]
        scenario = "hvac_failure"
        at = "+1h"
        sites = ["BKK_DC1"]
        [[event]]
        scenario = "hvac_failure"
        action = "clear"
        at = "+3h"
    """)
    sink = CollectingSink()
    world = World(build_fleet(get_preset("single-string"), 0), sink)
    controller = Scenarios(world)
    timeline.install(world, controller)
    world.run_until(2 * 3600)
    assert [a["name"] for a in controller.active()] == ["hvac_failure"]
    world.run_until(4 * 3600)
    assert controller.active() == []
    assert [e.kind for e in sink.events if e.kind.startswith("hvac")] == ["hvac_fault", "hvac_restored"]


@pytest.mark.parametrize("text,seconds", [
    ("2h", 7200), ("90min", 5400), ("1h30m", 5400), ("1d12h", 129_600), ("45s", 45), ("PT2H", 7200),
    ("P1DT6H", 108_000), ("1w", 604_800), ("2 hours", 7200), (600, 600),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("body,expected", [
    ('[[event]]\nscenario = "power_outag"\nat = "14:00"\n', ["[[event]] #1", "scenario", "power_outage, hvac"]),
    ('[[event]]\nscenario = "power_outage"\nat = "25:00"\n', ["[[event]] #1 (power_outage)", "at", "25:00"]),
    ('[[event]]\nscenario = "power_outage"\nat = "14:00"\nduration = "2 parsecs"\n', ["duration", "parsecs"]),
    ('[[event]]\nscenario = "power_outage"\nat = "14:00"\nrepeat = "sometimes"\n', ["repeat", "RRULE"]),
    ('[[event]]\nname = "hot"\nscenario = "high_temperature"\nat = "14:00"\nparams = { ambient_c = 99 }\n',
     ["[[event]] #1 (hot)", "params.ambient_c", "60"]),
    ('[[event]]\nscenario = "heatwave"\nat = "14:00"\nparams = { delta = 3 }\n', ["params.delta", "delta_c"]),
    ('timezone = "Mars/Olympus"\n', ["timezone", "Mars/Olympus"]),
    ('[[event]]\nscenario = "heatwave"\nwhen = "14:00"\n', ["at", "when"]),
    ('[[random]]\nkind = "earthquake"\n', ["[[random]] #1", "kind"]),
    ('[[random]]\nkind = "hvac_fault"\nrate_per_year = 3\n', ["rate_per_year", "hvac_fault"]),
    ('[[event]\n', ["not valid TOML"]),
    ('[[random]]\nkind = "battery_failure"\nhazard_scale = 0\n', ["[[random]] #1", "hazard_scale"]),
    ('[[random]]\nkind = "grid_outage"\nhazard_scale = 2\n', ["hazard_scale", "grid_outage"]),
])
def test_bad_timelines_are_refused_naming_the_file_event_and_field(tmp_path, body, expected):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(TimelineError) as caught:
        load_timeline(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message


def test_unknown_target_ids_are_refused_before_the_run(tmp_path):
    timeline = load_timeline('[[event]]\nscenario = "power_outage"\nat = "14:00"\nstrings = ["NOPE_STR01"]\n')
    with pytest.raises(TimelineError, match=r"<timeline>: \[\[event\]\] #1 \(power_outage\): strings: .*NOPE_STR01"):
        record(tmp_path / "x.duckdb", [timeline], preset="single-string", days=1)
    assert not (tmp_path / "x.duckdb").exists()


def test_shipped_timelines_load_and_fit_the_thai_presets():
    names = set(shipped_timelines())
    assert {"daily-outage", "hvac-failure", "hot-season", "realistic-year"} <= names
    for preset in ("thailand-9x24", "thailand-full"):
        fleet = build_fleet(get_preset(preset), 0)
        for path in shipped_timelines().values():
            load_timeline(path).check(fleet)


# ------------------------------------------------------------------------------------ CLI
def test_cli_run_with_two_timelines_merges_them(tmp_path):
    extra = tmp_path / "heat.toml"
    extra.write_text('[[event]]\nscenario = "hvac_failure"\nat = "+3h"\nduration = "2h"\n')
    out = tmp_path / "run.duckdb"
    result = CliRunner().invoke(app, ["run", "--preset", "single-string", "--days", "1", "--out", str(out),
                                      "--timeline", "daily-outage", "--timeline", str(extra), "--no-progress"])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(out), read_only=True) as con:
        scenarios = con.execute("SELECT DISTINCT detail->>'scenario' FROM events WHERE kind = 'scenario_applied' "
                                "ORDER BY 1").fetchall()
        sources = con.execute("SELECT config->'timelines' FROM runs").fetchone()[0]
    assert scenarios == [("hvac_failure",), ("power_outage",)]
    assert "daily-outage" in sources and "hvac_failure" in sources


def test_cli_refuses_a_bad_timeline_with_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[event]]\nscenario = "meteor"\nat = "14:00"\n')
    result = CliRunner().invoke(app, ["run", "--preset", "single-string", "--days", "1", "--out",
                                      str(tmp_path / "x.duckdb"), "--timeline", str(bad)])
    assert result.exit_code == 2
    assert "--timeline" in result.output and "bad.toml" in result.output and "meteor" in result.output
    assert not (tmp_path / "x.duckdb").exists()


def test_cli_scenarios_lists_the_catalogue_with_parameters():
    result = CliRunner().invoke(app, ["scenarios", "--json"])
    assert result.exit_code == 0, result.output
    import json

    listing = json.loads(result.output)
    by_name = {row["scenario"]: row for row in listing["scenarios"]}
    assert len(by_name) >= 10
    assert by_name["high_temperature"]["parameters"][0]["name"] == "ambient_c"
    assert by_name["high_temperature"]["parameters"][0]["default"] == 45.0
    assert "daily-outage" in listing["timelines"]
    table = CliRunner().invoke(app, ["scenarios"], terminal_width=200)
    assert "resistance_drift" in table.output and "rise_pct" in table.output
