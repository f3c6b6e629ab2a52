"""`battsim report`: the PNG charts and index.html for a real recording."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from tests.helpers import make_recording
from tests.test_analysis import make_story_recording
from typer.testing import CliRunner

from battsim.recordings.report import BUCKETS_S, bucket_seconds, write_report
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
