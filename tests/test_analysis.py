"""The analysis views, the Python API over them, and `battsim query`, checked against answers worked
out independently (polars over the raw stored samples, and the times of a scripted story)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from battsim.engine.fleet import FleetSpec, SiteSpec, get_preset
from battsim.engine.world import DEFAULT_START
from battsim.recordings import open_recording
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.query import execute, open_recordings, run_name, run_names
from battsim.recordings.views import VIEW_NAMES, ensure_views, missing_views
from battsim.service.cli import app

BANGKOK = ZoneInfo("Asia/Bangkok")
UTC = UTC


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=BANGKOK)


def story(world) -> None:
    """One day of a Bangkok string (times local): an alarm raised at 01:00 and cleared at 01:30; a
    one-hour outage at 02:00 the string rides through; a six-hour outage at 08:00 that ends in
    low-voltage disconnect; an alarm raised at 14:00 and never cleared; the room held at 45 °C from
    16:00 to 22:00."""

    def process():
        yield world.env.timeout(3600)
        world.emit("alarm_raised", battery=3, rule="high_temperature", severity="warning", value=35.4, threshold=35.0)
        yield world.env.timeout(1800)
        world.emit("alarm_cleared", battery=3, rule="high_temperature", severity="warning", value=33.9,
                   threshold=35.0)
        yield world.env.timeout(1800)
        world.lose_input([0], "grid")
        yield world.env.timeout(3600)
        world.restore_input([0], "grid")
        yield world.env.timeout(5 * 3600)
        world.lose_input([0], "grid")
        yield world.env.timeout(6 * 3600)
        world.restore_input([0], "grid")
        world.emit("alarm_raised", battery=5, rule="low_soh", severity="warning", value=79.0, threshold=80.0)
        yield world.env.timeout(2 * 3600)
        world.room_override_c[0] = 45.0
        yield world.env.timeout(6 * 3600)
        world.room_override_c[0] = np.nan

    world.env.process(process())


def make_story_recording(path: Path, alarms: bool = False) -> Path:
    """The story; the alarm rules only with ``alarms`` (otherwise the only alarms are the story's)."""
    run = BatchRun(fleet=get_preset("single-string"), out=path, seed=1, start=DEFAULT_START,
                   end=DEFAULT_START + timedelta(days=1), interval_s=60, preset="single-string",
                   configure_world=[story], alarms=alarms)
    record_run(run)
    return path


@pytest.fixture(scope="module")
def story_recording(tmp_path_factory) -> Path:
    return make_story_recording(tmp_path_factory.mktemp("story") / "story.duckdb")


@pytest.fixture(scope="module")
def samples(story_recording) -> pl.DataFrame:
    """The raw stored samples with the jar's ids and local day, NaN (dropout) as null."""
    with duckdb.connect(str(story_recording), read_only=True) as con:
        frame = con.sql("SELECT s.*, b.battery_id, b.string_id FROM reading_samples s "
                        "JOIN batteries b USING (battery_key)").pl()
    return frame.with_columns(
        pl.col(pl.Float32).fill_nan(None),
        pl.col("timestamp").dt.convert_time_zone("UTC"),
        day=pl.col("timestamp").dt.convert_time_zone("Asia/Bangkok").dt.date(),
    )


def view(path: Path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(f"SELECT * FROM {name}").pl()


# ------------------------------------------------------------------------------------ the views
def test_every_recording_has_the_views(story_recording):
    with duckdb.connect(str(story_recording), read_only=True) as con:
        assert missing_views(con) == []


def test_daily_battery_summary_matches_the_samples(story_recording, samples):
    daily = view(story_recording, "daily_battery_summary").sort("battery_id")
    # The run is exactly one Bangkok day: 1,440 one-minute readings per jar.
    assert daily.height == 24
    assert daily["day"].unique().to_list() == [datetime(2026, 1, 1).date()]
    assert daily["readings"].unique().to_list() == [1440]
    expected = samples.group_by("battery_id").agg(
        pl.col("voltage_v").min().alias("min_voltage_v"), pl.col("voltage_v").max().alias("max_voltage_v"),
        pl.col("voltage_v").cast(pl.Float64).mean().alias("mean_voltage_v"),
        pl.col("temperature_c").max().alias("max_temperature_c"),
        pl.col("current_a").min().alias("min_current_a"),
        pl.col("current_a").cast(pl.Float64).mean().alias("mean_current_a"),
    ).sort("battery_id")
    for column in expected.columns[1:]:
        np.testing.assert_allclose(daily[column].to_numpy(), expected[column].to_numpy(), rtol=1e-6, err_msg=column)
    # The outages discharged every jar: the day's lowest current is a discharge current.
    assert (daily["min_current_a"] < -20).all()


def test_local_days_follow_daylight_saving(tmp_path):
    """Berlin goes to summer time on 2026-03-29: that local day has 23 hours of readings."""
    spec = FleetSpec(name="berlin", sites=[SiteSpec(site_id="BER_DC1", timezone="Europe/Berlin", strings=1,
                                                     jars_per_string=2)])
    start = datetime(2026, 3, 28, tzinfo=ZoneInfo("Europe/Berlin"))
    path = tmp_path / "berlin.duckdb"
    record_run(BatchRun(fleet=spec, out=path, seed=2, start=start, end=start + timedelta(hours=71), interval_s=300))
    daily = view(path, "daily_battery_summary").filter(pl.col("battery_id") == "BER_DC1_SYS01_STR01_BAT001")
    counts = dict(zip(daily["day"].cast(pl.String), daily["readings"]))
    assert counts == {"2026-03-28": 24 * 12, "2026-03-29": 23 * 12, "2026-03-30": 24 * 12}


def test_soh_trend_puts_true_beside_measured(story_recording, samples):
    trend = view(story_recording, "soh_trend").sort("battery_id")
    with duckdb.connect(str(story_recording), read_only=True) as con:
        baseline = con.sql("SELECT battery_id, baseline_resistance_mohm FROM batteries").pl()
    expected = samples.group_by("battery_id").agg(
        pl.col("soh_pct").cast(pl.Float64).mean(), pl.col("true_soh_pct").cast(pl.Float64).mean(),
        pl.col("internal_resistance_mohm").cast(pl.Float64).mean(),
    ).join(baseline, on="battery_id").sort("battery_id")
    assert trend.height == 24
    for column in ("soh_pct", "true_soh_pct", "internal_resistance_mohm", "baseline_resistance_mohm"):
        np.testing.assert_allclose(trend[column].to_numpy(), expected[column].to_numpy(), rtol=1e-6, err_msg=column)
    rise = 100 * (expected["internal_resistance_mohm"] / expected["baseline_resistance_mohm"] - 1)
    np.testing.assert_allclose(trend["resistance_rise_pct"].to_numpy(), rise.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(trend["soh_error_pct"].to_numpy(),
                               (expected["soh_pct"] - expected["true_soh_pct"]).to_numpy(), rtol=1e-6, atol=1e-9)


def test_time_above_temperature_counts_the_hot_minutes(story_recording, samples):
    hot = view(story_recording, "time_above_temperature").sort("battery_id")
    expected = samples.group_by("battery_id").agg(
        *[((pl.col("temperature_c") > t).sum() / 60.0).alias(f"hours_above_{t}c") for t in (25, 30, 35, 40)],
        ((pl.col("true_temperature_c") > 35).sum() / 60.0).alias("true_hours_above_35c"),
    ).sort("battery_id")
    for column in expected.columns[1:]:
        np.testing.assert_allclose(hot[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
    # The room was held at 45 °C for six hours while the string was still recharging after its
    # disconnect (charge losses warm the jars a few kelvin): every jar spent hours above 35 °C, none
    # much more than the six hours and the ~2 h its body takes to cool.
    assert (hot["hours_above_35c"] > 1).all() and (hot["hours_above_35c"] <= 8.0).all()


def test_outage_autonomy_per_outage_and_string(story_recording, samples):
    outages = view(story_recording, "outage_autonomy")
    assert outages["start"].to_list() == [local(2).astimezone(UTC), local(8).astimezone(UTC)]
    assert outages["end"].to_list() == [local(3).astimezone(UTC), local(14).astimezone(UTC)]
    assert outages["duration_s"].to_list() == [3600.0, 6 * 3600.0]
    assert outages["cause"].to_list() == ["grid", "grid"]
    assert outages["ended"].to_list() == [True, True]
    assert outages["lvd_reached"].to_list() == [False, True]
    with duckdb.connect(str(story_recording), read_only=True) as con:
        lvd_at = con.execute("SELECT timestamp FROM events WHERE kind = 'low_voltage_disconnect'").fetchone()[0]
    # The disconnect happens at its own instant, between readings (the view's epoch arithmetic is float).
    assert outages["time_to_disconnect_s"][1] == pytest.approx((lvd_at - local(8)).total_seconds(), abs=1e-3)
    assert outages["time_to_disconnect_s"][0] is None

    # By hand from the samples: per tick, the string's voltage is the sum of its jars', its current
    # their mean; Ah delivered is the discharge current times one minute.
    ticks = samples.filter(pl.col("mode").is_in([3, 4])).group_by("timestamp", "mode").agg(
        pl.col("voltage_v").cast(pl.Float64).sum().alias("v"), pl.col("voltage_v").min().alias("block"),
        pl.col("current_a").cast(pl.Float64).mean().alias("i"))
    for row, (begin, end) in enumerate([(local(2), local(3)), (local(8), local(14))]):
        window = ticks.filter(pl.col("timestamp").is_between(begin.astimezone(UTC), end.astimezone(UTC)))
        ah = -(window.filter(pl.col("mode") == 3)["i"].sum()) / 60.0
        assert outages["ah_delivered"][row] == pytest.approx(ah, rel=1e-9)
        assert outages["min_string_voltage_v"][row] == pytest.approx(window["v"].min(), rel=1e-9)
        assert outages["min_block_voltage_v"][row] == pytest.approx(window["block"].min(), rel=1e-6)
    # A 10 kW load on a ~300 V string for an hour draws about 33 Ah.
    assert 25 < outages["ah_delivered"][0] < 45
    assert outages["ah_delivered"][1] > outages["ah_delivered"][0]


def test_alarms_pair_raised_with_cleared(story_recording):
    alarms = view(story_recording, "alarms")
    assert alarms["rule"].to_list() == ["high_temperature", "low_soh"]
    assert alarms["battery_id"].to_list() == ["BKK_DC1_SYS01_STR01_BAT004", "BKK_DC1_SYS01_STR01_BAT006"]
    assert alarms["raised_at"].to_list() == [local(1).astimezone(UTC), local(14).astimezone(UTC)]
    assert alarms["cleared_at"].to_list() == [local(1, 30).astimezone(UTC), None]
    assert alarms["active"].to_list() == [False, True]
    # An active alarm lasts until the last reading (23:59).
    assert alarms["duration_s"].to_list() == [1800.0, (local(23, 59) - local(14)).total_seconds()]
    assert alarms["value"].to_list() == [35.4, 79.0]
    assert alarms["threshold"].to_list() == [35.0, 80.0]
    assert json.loads(alarms["cleared_detail"][0])["value"] == 33.9


def test_alarms_from_the_alarm_rules_pair_up(tmp_path):
    """With the rules on, the room held at 45 °C from 16:00 to 22:00 raises high-temperature alarms
    that clear after it; every raise pairs with the next clear of the same rule and jar."""
    path = make_story_recording(tmp_path / "rules.duckdb", alarms=True)
    alarms = view(path, "alarms")
    with duckdb.connect(str(path), read_only=True) as con:
        raised, cleared = con.execute("SELECT count(*) FILTER (WHERE kind = 'alarm_raised'), "
                                      "count(*) FILTER (WHERE kind = 'alarm_cleared') FROM events").fetchone()
    assert alarms.height == raised and (~alarms["active"]).sum() == cleared
    closed = alarms.filter(~pl.col("active"))
    assert (closed["cleared_at"] > closed["raised_at"]).all()
    assert (closed["duration_s"] == (closed["cleared_at"] - closed["raised_at"]).dt.total_seconds()).all()
    hot = alarms.filter(pl.col("rule") == "high_temperature", pl.col("battery_id") != "BKK_DC1_SYS01_STR01_BAT004")
    assert hot.height >= 20  # nearly every jar of the string
    assert (hot["raised_at"] > local(16).astimezone(UTC)).all()
    assert (hot["cleared_at"] > local(22).astimezone(UTC)).all() and (hot["value"] > 35).all()
    # At most one alarm of a rule is open on a jar at a time.
    assert alarms.filter(pl.col("active")).select("rule", "battery_id").is_duplicated().sum() == 0


def test_ensure_views_upgrades_an_older_recording(story_recording, tmp_path):
    old = tmp_path / "old.duckdb"
    shutil.copy(story_recording, old)
    with duckdb.connect(str(old)) as con:
        for name in VIEW_NAMES:
            con.execute(f"DROP VIEW {name}")
        assert missing_views(con) == list(VIEW_NAMES)
        assert ensure_views(con) == list(VIEW_NAMES)
        assert ensure_views(con) == []
    assert view(old, "alarms").height == 2


# ------------------------------------------------------------------------------------ Python API
def test_recording_methods_filter_and_stay_lazy(story_recording):
    with open_recording(story_recording) as rec:
        daily = rec.daily_battery_summary(batteries=["BKK_DC1_SYS01_STR01_BAT001"])
        assert isinstance(daily, pl.LazyFrame)
        assert daily.collect()["readings"].to_list() == [1440]
        # A time filter narrows the readings before they are aggregated.
        morning = rec.time_above_temperature(start=local(0), end=local(12)).collect()
        assert morning["readings"].unique().to_list() == [720]
        assert morning["hours_above_35c"].sum() == 0  # the heat came in the evening
        assert rec.soh_trend(sites=["NOPE"]).collect().height == 0
        assert isinstance(rec.outage_autonomy(), pl.DataFrame)
        assert rec.outage_autonomy(start=local(6))["lvd_reached"].to_list() == [True]
        assert rec.alarms(rules=["low_soh"])["active"].to_list() == [True]
        assert rec.alarms(batteries=["BKK_DC1_SYS01_STR01_BAT004"]).height == 1


# ------------------------------------------------------------------------------------ query
def test_run_names_are_identifiers_and_unique():
    assert run_name("/data/2026-heat wave.duckdb") == "run_2026_heat_wave"
    assert run_name("memory.duckdb") == "run_memory"
    assert run_names(["a/year.duckdb", "b/year.duckdb", "Year.duckdb"]) == ["year", "year_2", "year_3"]


def test_several_recordings_in_one_query(story_recording, tmp_path):
    other = tmp_path / "heat.duckdb"
    shutil.copy(story_recording, other)
    old = tmp_path / "old.duckdb"
    shutil.copy(story_recording, old)
    with duckdb.connect(str(old)) as con:
        con.execute("DROP VIEW alarms")
    before = old.read_bytes()
    connection = open_recordings([story_recording, other, old])
    try:
        result = execute(connection, "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM heat.readings),"
                                     " (SELECT count(*) FROM old.alarms), (SELECT count(*) FROM story.outage_autonomy)")
        assert list(result.rows) == [(34560, 34560, 2, 2)]
        # A read-only attachment: writes are refused.
        with pytest.raises(duckdb.Error):
            connection.execute("DELETE FROM heat.events")
    finally:
        connection.close()
    assert old.read_bytes() == before  # the older file got its views in memory, not on disk


def test_cli_query_formats(story_recording):
    runner = CliRunner()
    sql = "SELECT rule, raised_at, active FROM alarms ORDER BY raised_at"
    as_json = runner.invoke(app, ["query", str(story_recording), sql, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {"rule": "high_temperature", "raised_at": "2025-12-31T18:00:00+00:00", "active": False},
        {"rule": "low_soh", "raised_at": "2026-01-01T07:00:00+00:00", "active": True},
    ]
    as_csv = runner.invoke(app, ["query", str(story_recording), sql, "--format", "csv"])
    assert as_csv.stdout.splitlines() == ["rule,raised_at,active", "high_temperature,2025-12-31T18:00:00+00:00,false",
                                          "low_soh,2026-01-01T07:00:00+00:00,true"]
    as_table = runner.invoke(app, ["query", str(story_recording), "SELECT voltage_v FROM readings LIMIT 3",
                                   "--max-rows", "2"])
    assert as_table.exit_code == 0 and "more not shown" in as_table.output
    # Stored 32-bit floats print as the sensor's resolution, not 13.625000953674316.
    single = runner.invoke(app, ["query", str(story_recording), "SELECT voltage_v FROM readings LIMIT 1",
                                 "--format", "csv"])
    assert len(single.stdout.splitlines()[1]) <= 10


@pytest.mark.parametrize("args, flag", [
    (["SELECT 1"], "FILE/SQL"),
    (["{rec}", "SELECT 1", "--format", "xml"], "--format"),
    (["missing.duckdb", "SELECT 1"], "FILE"),
    (["{rec}", "SELEC 1"], "SQL"),
    (["{rec}", "{rec}"], "SQL"),
    (["{not_rec}", "SELECT 1"], "FILE"),
])
def test_cli_query_errors_name_the_flag(story_recording, tmp_path, args, flag):
    not_rec = tmp_path / "empty.duckdb"
    duckdb.connect(str(not_rec)).close()
    args = [a.format(rec=story_recording, not_rec=not_rec) for a in args]
    result = CliRunner().invoke(app, ["query", *args])
    assert result.exit_code == 2
    assert f"error: {flag}:" in result.output
