"""Issue 15, point 5: `battsim export --layout original` writes the original project's dataset files."""

import csv
import gzip
import re
from datetime import UTC, datetime

import duckdb
import pytest
from tests.helpers import make_recording
from typer.testing import CliRunner

from battsim.recordings.export import ExportError, export_recording
from battsim.service.cli import app

NAIVE_UTC = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("original") / "fleet.duckdb"
    make_recording(path, preset="thailand-9x24", days=0.5, interval_s=900, seed=6)
    return path


def read(path):
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_gzip_csv_files_per_site_in_one_folder(recording, tmp_path):
    out = tmp_path / "dataset"
    summary = export_recording(recording, out, layout="original")
    with duckdb.connect(str(recording), read_only=True) as con:
        sites = [row[0] for row in con.execute("SELECT site_id FROM sites ORDER BY site_key").fetchall()]
        per_site = dict(con.execute("SELECT site_id, count(*) FROM readings GROUP BY ALL").fetchall())
    expected = sorted([f"battery_sensors_{s}.csv.gz" for s in sites] + [f"string_sensors_{s}.csv.gz" for s in sites])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == expected
    assert summary.rows["battery_sensors_BKK_DC1.csv.gz"] == per_site["BKK_DC1"] == 24 * 48
    assert summary.rows["string_sensors_BKK_DC1.csv.gz"] == 48


def test_columns_values_and_naive_utc_timestamps(recording, tmp_path):
    out = tmp_path / "dataset"
    export_recording(recording, out, layout="original")
    jars = read(out / "battery_sensors_CNX_DC1.csv.gz")
    strings = read(out / "string_sensors_CNX_DC1.csv.gz")
    assert list(jars[0]) == ["ts", "battery_id", "voltage_v", "temperature_c", "resistance_mohm", "conductance_s",
                             "soc_pct", "soh_pct"]
    assert list(strings[0]) == ["ts", "string_id", "voltage_v", "current_a", "mode", "ripple_voltage_rms_v",
                                "ripple_current_rms_a"]
    assert all(NAIVE_UTC.match(row["ts"]) for row in jars + strings)
    # The run starts at 2026-01-01 00:00 in Bangkok: 17:00 the day before in UTC.
    assert jars[0]["ts"] == strings[0]["ts"] == "2025-12-31 17:00:00"
    with duckdb.connect(str(recording), read_only=True) as con:
        first = con.execute("""SELECT voltage_v, internal_resistance_mohm, soh_pct FROM readings
                               WHERE battery_id = ? AND timestamp = ?""",
                            [jars[0]["battery_id"], datetime(2025, 12, 31, 17, tzinfo=UTC)]).fetchone()
    assert float(jars[0]["voltage_v"]) == pytest.approx(first[0], abs=5e-4)
    assert len(jars[0]["voltage_v"].split(".")[1]) <= 3  # the monitor's resolution, not float32 noise
    assert float(jars[0]["resistance_mohm"]) == pytest.approx(first[1], abs=5e-3)
    for row in jars:
        if row["resistance_mohm"]:
            assert float(row["conductance_s"]) == pytest.approx(1000 / float(row["resistance_mohm"]), abs=1e-3)
    assert {row["mode"] for row in strings} == {"float"}
    assert [row["ts"] for row in jars] == sorted(row["ts"] for row in jars)


def test_bad_layouts_and_outs_are_refused(recording, tmp_path):
    with pytest.raises(ExportError) as caught:
        export_recording(recording, tmp_path / "x", layout="pandas")
    assert caught.value.option == "layout" and "battsim, original" in caught.value.message
    with pytest.raises(ExportError) as caught:
        export_recording(recording, tmp_path / "x.csv", layout="original")
    assert caught.value.option == "out"
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(recording), "--out", str(tmp_path / "cli"), "--layout", "original"])
    assert result.exit_code == 0, result.output
    assert "battery_sensors_HDY_DC1.csv.gz" in result.stdout
    refused = runner.invoke(app, ["export", str(recording), "--out", str(tmp_path / "cli"), "--layout", "original"])
    assert refused.exit_code == 2 and "--overwrite" in refused.output  # never replaced without asking
    refused = runner.invoke(app, ["export", str(recording), "--out", str(tmp_path / "c2"), "--layout", "notebook"])
    assert refused.exit_code == 2 and "error: --layout:" in refused.output
