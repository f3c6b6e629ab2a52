"""`battsim report`: the PNG charts and index.html for a real recording."""

from __future__ import annotations

import html
from datetime import UTC
from pathlib import Path

import duckdb
import pytest
from tests.helpers import make_recording
from tests.test_analysis import make_story_recording
from typer.testing import CliRunner

from battsim.recordings import report as report_module
from battsim.recordings.report import BUCKETS_S, bucket_seconds, write_report
from battsim.scenarios import load_timeline, shipped_timelines
from battsim.service.cli import app

CHARTS = ["alarms.png", "current.png", "outage_autonomy.png", "soh.png", "temperature.png", "voltage.png"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return make_story_recording(tmp_path_factory.mktemp("report") / "story.duckdb")


def test_report_writes_charts_and_index(recording, tmp_path):
    report = write_report(recording, tmp_path / "out")
    assert sorted(p.name for p in report.charts) == CHARTS
    for chart in report.charts:
        data = chart.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, chart.name
    page = report.index.read_text()
    for chart in CHARTS:
        assert f'src="{chart}"' in page
    # The headline figures of the story: two outages, one ending in low-voltage disconnect, two alarms.
    assert report.headline["Outages (string × outage)"] == "2"
    assert report.headline["Low-voltage disconnects"] == "1"
    assert report.headline["Outage hours, total / longest"] == "7.0 h / 6.00 h"
    assert report.headline["Alarms by rule"] == "high_temperature: 1, low_soh: 1"
    assert report.headline["Alarms still active at the end"] == "1"
    assert report.headline["Readings"] == "34,560"
    assert report.headline["Fleet"] == "1 site, 1 string, 24 jars"
    hot_hours = float(report.headline["Jar-hours above 35 °C"].replace(",", ""))
    assert hot_hours > 24  # 24 jars, hours each above 35 °C while the room was held at 45 °C
    for name, value in report.headline.items():
        assert f"<th>{html.escape(name)}</th><td>{html.escape(value)}</td>" in page
    assert "Headline figures" in page and "low_voltage_disconnect: 1" in page


def test_quiet_recording_says_there_is_nothing_to_show(tmp_path):
    path = tmp_path / "quiet.duckdb"
    make_recording(path, preset="single-string", days=0.25, interval_s=300, alarms=False)
    report = write_report(path, tmp_path / "out")
    assert report.headline["Outages (string × outage)"] == "0"
    assert report.headline["Alarms raised"] == "0"
    assert all(chart.exists() for chart in report.charts)


def test_bucket_is_at_least_one_interval_and_keeps_lines_short():
    assert bucket_seconds(86_400, 60) == 300  # a day: 288 points
    assert bucket_seconds(7 * 86_400, 60) == 900  # a week: 672 points
    assert bucket_seconds(365 * 86_400, 60) == 43_200  # a year: 730 points
    assert bucket_seconds(3600, 600) == 600  # never finer than the readings
    assert bucket_seconds(1e12, 60) == BUCKETS_S[-1]


def test_cli_report(recording, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(recording), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "index.html").exists()
    (tmp_path / "file").write_text("x")
    refused = runner.invoke(app, ["report", str(recording), "--out", str(tmp_path / "file")])
    assert refused.exit_code == 2 and "error: --out:" in refused.output
    refused = runner.invoke(app, ["report", str(recording), "--out", str(tmp_path / "no" / "such")])
    assert refused.exit_code == 2 and "error: --out:" in refused.output
    missing = runner.invoke(app, ["report", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "m")])
    assert missing.exit_code == 2 and "error: FILE:" in missing.output


# ------------------------------------------------------------------ issue 23: a report worth opening
def _sql(recording: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(recording), read_only=True) as connection:
        return connection.execute(query).fetchall()


def _view(recording: Path, query: str) -> dict:
    with duckdb.connect(str(recording), read_only=True) as connection:
        return report_module._fetch(connection, query)


def test_index_opens_with_a_summary_that_matches_sql(recording, tmp_path):
    report = write_report(recording, tmp_path / "out")
    summary = report.summary
    assert list(summary) == ["Fleet", "Span", "Readings", "Outages", "Alarms", "Worst strings"]
    sites, strings, jars = _sql(recording, "SELECT (SELECT count(*) FROM sites), count(DISTINCT string_id), count(*) "
                                           "FROM batteries")[0]
    assert summary["Fleet"] == f"{sites} site, {strings} string, {jars} jars"
    (readings,) = _sql(recording, "SELECT count(*) FROM reading_samples")[0]
    assert summary["Readings"] == f"{readings:,}"
    start, end = _sql(recording, 'SELECT start, "end" FROM runs')[0]
    assert summary["Span"].startswith(f"{start.astimezone(UTC):%Y-%m-%d %H:%M} → {end.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    grid, string_outages, lvd = _sql(recording, 'SELECT count(DISTINCT (start, "end")), count(*), '
                                                "count_if(lvd_reached) FROM outage_autonomy")[0]
    assert summary["Outages"] == f"{grid} grid outages, {string_outages} string outages, {lvd} low-voltage disconnects"
    assert (grid, string_outages, lvd) == (2, 2, 1)
    by_severity = _sql(recording, "SELECT severity, n FROM (SELECT severity, count(*) AS n FROM alarms GROUP BY ALL) "
                                  "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END")
    total = sum(n for _, n in by_severity)
    assert summary["Alarms"] == f"{total} raised (" + ", ".join(f"{n} {s}" for s, n in by_severity) + ")"
    worst = _sql(recording, "SELECT b.string_id, min(r.true_soh_pct) FROM reading_samples r JOIN batteries b "
                            "USING (battery_key) WHERE r.timestamp = (SELECT max(timestamp) FROM reading_samples) "
                            "GROUP BY ALL ORDER BY 2 LIMIT 3")
    (lvd_string,) = _sql(recording, "SELECT string_id FROM outage_autonomy WHERE lvd_reached")[0]
    assert summary["Worst strings"].startswith(f"{worst[0][0]}: weakest jar {worst[0][1]:.1f} %")
    assert ("1 disconnect" in summary["Worst strings"]) == (lvd_string in [w[0] for w in worst])
    page = report.index.read_text()
    # The summary is the first table on the page, before the charts and the longer figures.
    assert page.index('<table id="summary">') < page.index("Headline figures") < page.index("<img")
    for name, value in summary.items():
        assert f"<th>{html.escape(name)}</th><td>{html.escape(value)}</td>" in page


def test_autonomy_points_are_the_outage_autonomy_rows(recording):
    outages = _view(recording, "SELECT * FROM outage_autonomy")
    points = report_module.autonomy_points(outages)
    rows = _sql(recording, "SELECT string_id, duration_s / 60, CASE WHEN lvd_reached THEN time_to_disconnect_s "
                           "ELSE duration_s END / 60, lvd_reached, min_block_voltage_v FROM outage_autonomy")
    assert len(points["string_id"]) == len(rows) == 2
    got = [(str(s), float(d), float(a), bool(lvd), float(v)) for s, d, a, lvd, v in
           zip(points["string_id"], points["duration_min"], points["autonomy_min"], points["lvd"],
               points["min_block_voltage_v"])]
    assert sorted(got) == sorted(rows)
    # The disconnect ran out before the grid came back; the other outage was held to its end.
    assert [bool(a < d) for _, d, a, lvd, _ in got] == [bool(lvd) for *_, lvd, _ in got]


def test_alarm_counts_per_bin_equal_the_alarms_view(recording):
    alarms = _view(recording, "SELECT rule, severity, raised_at FROM alarms")
    start, end = _sql(recording, 'SELECT start, "end" FROM runs')[0]
    bin_s = report_module.alarm_bin_seconds((end - start).total_seconds())
    assert bin_s == 3600  # a day of readings: hourly bins
    edges, counts = report_module.alarm_counts(alarms, start, end, bin_s)
    assert len(edges) == 24
    expected = _sql(recording, f"""SELECT severity, rule, (epoch(raised_at) - epoch('{start.isoformat()}'::TIMESTAMPTZ))
                                   // {bin_s} AS bin, count(*) FROM alarms GROUP BY ALL""")
    assert expected  # the story raises alarms
    got = {(s, r, int(b)): int(n) for (s, r), c in counts.items() for b, n in enumerate(c) if n}
    assert got == {(s, r, int(b)): n for s, r, b, n in expected}
    assert sum(int(c.sum()) for c in counts.values()) == _sql(recording, "SELECT count(*) FROM alarms")[0][0]


def test_changed_charts_are_drawn_for_a_fleet_with_outages(tmp_path):
    path = tmp_path / "fleet.duckdb"
    make_recording(path, preset="thailand-9x24", days=1, interval_s=300,
                   timelines=[load_timeline(shipped_timelines()["daily-outage"])])
    report = write_report(path, tmp_path / "out")
    for name in ("outage_autonomy.png", "alarms.png", "soh.png"):
        data = (report.out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    assert report.summary["Outages"].startswith("1 grid outages, 9 string outages")
