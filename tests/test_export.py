"""`battsim export`: Parquet and CSV that DuckDB and polars read back to exactly the recorded readings."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from tests.test_analysis import make_story_recording
from typer.testing import CliRunner

from battsim.recordings.export import ExportError, export_recording
from battsim.service.cli import app


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return make_story_recording(tmp_path_factory.mktemp("export") / "story.duckdb")


@pytest.fixture(scope="module")
def readings(recording) -> pl.DataFrame:
    """The readings view in stored order (time, then the jar's key)."""
    with duckdb.connect(str(recording), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql("SELECT r.* FROM readings r JOIN batteries b USING (battery_id) "
                       "ORDER BY r.timestamp, b.battery_key").pl()


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def test_parquet_file_round_trips_in_stored_order(recording, readings, tmp_path):
    out = tmp_path / "readings.parquet"
    summary = export_recording(recording, out, "parquet")
    assert summary.rows == {"readings": 34560}
    assert_frame_equal(_utc(pl.read_parquet(out)), _utc(readings))
    with duckdb.connect() as con:
        assert con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0] == 34560


def test_directory_holds_every_table(recording, readings, tmp_path):
    out = tmp_path / "all"
    summary = export_recording(recording, out, "parquet")
    assert sorted(p.name for p in out.iterdir()) == [".battsim-export", "batteries.parquet", "events.parquet",
                                                      "ohmic_tests.parquet", "readings.parquet", "runs.parquet",
                                                      "sites.parquet", "string_readings.parquet",
                                                      "strings.parquet"]  # the last three since issue 15
    assert summary.rows["batteries"] == 24 and summary.rows["runs"] == 1
    with duckdb.connect(str(recording), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        events = con.sql("SELECT * FROM events ORDER BY timestamp").pl()
    assert_frame_equal(_utc(pl.read_parquet(out / "events.parquet")), _utc(events))
    assert_frame_equal(_utc(pl.read_parquet(out / "readings.parquet")), _utc(readings))


def test_partitioned_parquet_is_hive_by_site_and_local_date(recording, readings, tmp_path):
    out = tmp_path / "hive"
    export_recording(recording, out, "parquet", partition=True)
    files = sorted(p.relative_to(out / "readings").parts[:2] for p in (out / "readings").rglob("*.parquet"))
    # The run is one Bangkok day, so one partition.
    assert files == [("site_id=BKK_DC1", "date=2026-01-01")]
    pattern = str(out / "readings" / "**" / "*.parquet")

    lazy = pl.scan_parquet(pattern, hive_partitioning=True)
    back = lazy.filter(pl.col("site_id") == "BKK_DC1").collect()
    assert back.schema["date"] == pl.Date
    columns = readings.columns
    assert_frame_equal(_utc(back.select(columns).sort("timestamp", "battery_id")),
                       _utc(readings.sort("timestamp", "battery_id")))
    with duckdb.connect() as con:
        count, days = con.execute(
            f"SELECT count(*), count(DISTINCT date) FROM read_parquet('{pattern}', hive_partitioning = true) "
            "WHERE site_id = 'BKK_DC1'").fetchone()
    assert (count, days) == (34560, 1)


def test_csv_round_trips(recording, readings, tmp_path):
    out = tmp_path / "readings.csv"
    export_recording(recording, out, "csv")
    back = pl.read_csv(out, try_parse_dates=True, schema_overrides={c: pl.Float32 for c, t in readings.schema.items()
                                                                    if t == pl.Float32})
    assert back.height == readings.height
    assert back["timestamp"].dtype == pl.Datetime("us", "UTC")
    assert_frame_equal(_utc(back.select(readings.columns)), _utc(readings), check_dtypes=False)
    with duckdb.connect() as con:
        kind = con.execute(f"DESCRIBE SELECT timestamp FROM '{out}'").fetchone()[1]
    assert kind == "TIMESTAMP WITH TIME ZONE"


def test_bad_options_name_the_option(recording, tmp_path):
    cases = [
        (dict(out=tmp_path / "x.parquet", format="xlsx"), "format"),
        (dict(out=tmp_path / "x.csv", format="parquet"), "out"),
        (dict(out=tmp_path / "d", format="csv", partition=True), "partition"),
        (dict(out=tmp_path / "x.parquet", format="parquet", partition=True), "partition"),
        (dict(out=tmp_path / "no" / "such" / "x.parquet", format="parquet"), "out"),
    ]
    for kwargs, option in cases:
        with pytest.raises(ExportError) as caught:
            export_recording(recording, **kwargs)
        assert caught.value.option == option, kwargs
    taken = tmp_path / "taken.parquet"
    taken.write_text("mine")
    with pytest.raises(ExportError, match="--overwrite"):
        export_recording(recording, taken, "parquet")
    assert taken.read_text() == "mine"
    export_recording(recording, taken, "parquet", overwrite=True)
    assert pl.read_parquet(taken).height == 34560


def test_cli_export(recording, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(recording), "--format", "parquet", "--out", str(tmp_path / "p"),
                                 "--partition"])
    assert result.exit_code == 0, result.output
    assert "34,560 rows" in result.stdout
    refused = runner.invoke(app, ["export", str(recording), "--format", "csv", "--out", str(tmp_path / "c"),
                                  "--partition"])
    assert refused.exit_code == 2 and "error: --partition:" in refused.output
    refused = runner.invoke(app, ["export", str(recording), "--format", "xlsx", "--out", str(tmp_path / "j")])
    assert refused.exit_code == 2 and "error: --format:" in refused.output
    missing = runner.invoke(app, ["export", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "n")])
    assert missing.exit_code == 2 and "error: FILE:" in missing.output
