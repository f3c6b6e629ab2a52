"""Output people can read (issue 23, point 3): one timestamp format across ``query``, ``export`` and ``replay``,
numbers at each channel's resolution, a query table that never cuts an id, and the same ``--format`` names
in every command."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from tests.helpers import make_recording
from typer.testing import CliRunner

from battsim.recordings.presentation import iso_utc, table_layout, text_value, unit_decimals
from battsim.scenarios import load_timeline
from battsim.service.cli import app

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")
# An outage a day at a random instant: events between readings, with fractions of a second.
OUTAGES = load_timeline('[[random]]\nkind = "grid_outage"\nrate_per_year = 365\n', source="outages")
JAR = "BKK_DC1_SYS01_STR01_BAT007"


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("out") / "day.duckdb"
    make_recording(path, days=2, interval_s=300, seed=1, timelines=[OUTAGES])  # seed 1: an outage at 0.45 d
    return path


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# ------------------------------------------------------------------------------------ timestamps
def test_query_csv_json_export_csv_json_and_replay_show_the_same_timestamp(recording, tmp_path):
    sql = f"SELECT timestamp, voltage_v FROM readings WHERE battery_id = '{JAR}' ORDER BY timestamp LIMIT 3"
    from_csv = [r["timestamp"] for r in csv_rows(invoke("query", recording, sql, "--format", "csv"))]
    from_json = [r["timestamp"] for r in json.loads(invoke("query", recording, sql, "--format", "json"))]
    invoke("export", recording, "--format", "csv", "--out", tmp_path / "r.csv")
    invoke("export", recording, "--format", "json", "--out", tmp_path / "r.json")
    exported_csv = [r["timestamp"] for r in csv_rows((tmp_path / "r.csv").read_text()) if r["battery_id"] == JAR][:3]
    exported_json = [r["timestamp"] for r in json.loads((tmp_path / "r.json").read_text()) if r["battery_id"] == JAR][:3]
    frames = [json.loads(line) for line in invoke("replay", recording, "--speed", "max", "--battery", JAR,
                                                  "--to", "+15m").splitlines()]
    replayed = [frame["data"][0]["timestamp"] for frame in frames]
    assert from_csv == ["2025-12-31T17:00:00+00:00", "2025-12-31T17:05:00+00:00", "2025-12-31T17:10:00+00:00"]
    assert from_json == exported_csv == exported_json == replayed == [f["sim_time"] for f in frames] == from_csv


def test_instants_between_readings_keep_their_fraction_the_same_way_everywhere(recording, tmp_path):
    sql = "SELECT timestamp, kind FROM events WHERE kind = 'outage_start' ORDER BY timestamp"
    queried = [r["timestamp"] for r in csv_rows(invoke("query", recording, sql, "--format", "csv"))]
    invoke("export", recording, "--format", "csv", "--out", tmp_path / "all")
    exported = [r["timestamp"] for r in csv_rows((tmp_path / "all" / "events.csv").read_text())
                if r["kind"] == "outage_start"]
    assert queried and queried == exported
    assert all(ISO_UTC.fullmatch(t) for t in queried)
    assert any("." in t for t in queried), "random outages start between whole seconds"


def test_iso_utc_is_utc_with_the_offset_and_a_fraction_only_when_there_is_one():
    bangkok = datetime(2026, 1, 1, 7, tzinfo=UTC) + timedelta(hours=0)
    assert iso_utc(bangkok) == "2026-01-01T07:00:00+00:00"
    assert iso_utc(datetime.fromisoformat("2026-01-01T07:00:00.25+07:00")) == "2026-01-01T00:00:00.250000+00:00"


# ------------------------------------------------------------------------------------ numbers
def test_numbers_print_at_their_channel_resolution(recording, tmp_path):
    sql = ("SELECT voltage_v, current_a, temperature_c, internal_resistance_mohm, soh_pct, ambient_c, "
           "min(voltage_v) OVER () AS lowest_v FROM readings WHERE voltage_v IS NOT NULL LIMIT 50")
    decimals = {"voltage_v": 3, "current_a": 2, "temperature_c": 1, "internal_resistance_mohm": 2, "soh_pct": 1,
                "ambient_c": 1, "lowest_v": 3}
    rows = csv_rows(invoke("query", recording, sql, "--format", "csv"))
    invoke("export", recording, "--format", "csv", "--out", tmp_path / "r.csv")
    exported = csv_rows((tmp_path / "r.csv").read_text())[:50]
    for row in rows + exported:
        for column, places in decimals.items():
            if column in row:
                assert re.fullmatch(rf"-?\d+\.\d{{{places}}}", row[column]), (column, row[column])
    # JSON numbers carry no float32 noise (13.644001) either.
    for row in json.loads(invoke("query", recording, sql, "--format", "json")):
        assert row["voltage_v"] == round(row["voltage_v"], 3) and row["temperature_c"] == round(row["temperature_c"], 1)


@pytest.mark.parametrize(("column", "type_name", "places"), [
    ("voltage_v", "FLOAT", 3), ("min(voltage_v)", "FLOAT", 3), ("mean_temperature_c", "DOUBLE", 1),
    ("current_a", "FLOAT", 2), ("internal_resistance_mohm", "FLOAT", 2), ("soh_pct", "FLOAT", 1),
    ("true_voltage_v", "FLOAT", None), ("avg(true_soh_pct)", "DOUBLE", None),
    ("ah_delivered", "DOUBLE", 2), ("time_to_disconnect_s", "DOUBLE", 1), ("voltage_v", "INTEGER", None),
    ("value", "DOUBLE", None), ("battery_id", "VARCHAR", None),
])
def test_the_unit_in_a_column_name_gives_its_decimals(column, type_name, places):
    assert unit_decimals(column, type_name) == places


def test_text_values_keep_trailing_zeros_and_never_print_minus_zero():
    assert text_value(24.000000953674316, 1) == "24.0"
    assert text_value(-0.001, 2) == "0.00"
    assert text_value(float("nan"), 3) == ""
    assert text_value(13.644001007080078, None) == "13.644001007080078"


# ------------------------------------------------------------------------------------ the table
def test_the_table_never_cuts_an_id_or_a_time(recording):
    long_id = "SITE_" + "X" * 110
    sql = (f"SELECT '{long_id}' AS battery_id, timestamp, kind, detail FROM events "
           "WHERE kind = 'outage_start' LIMIT 2")
    for width in ("40", "200"):
        output = invoke("query", recording, sql, "--max-width", width)
        assert long_id in output
        assert all(ISO_UTC.search(line) for line in output.splitlines() if long_id in line)
        assert "…" not in output


def test_a_narrow_table_wraps_only_text_with_spaces():
    headers = ["battery_id", "detail"]
    rows = [["BKK_DC1_SYS01_STR01_BAT001", '{"cause": "scenario:power_outage", "jars": 24}']]
    layout = table_layout(headers, rows, max_width=50)
    assert layout.min_widths[0] == len(rows[0][0]) and layout.wraps == [False, True]
    assert layout.width == 50
    # Too narrow for the id and a readable detail column: wider than asked, rather than cut.
    assert table_layout(headers, rows, max_width=40).width == len(rows[0][0]) + 12 + 7
    assert table_layout(headers, rows, max_width=None).width == len(rows[0][0]) + len(rows[0][1]) + 7


# ------------------------------------------------------------------------------------ --format
def test_query_writes_parquet_with_the_stored_types(recording, tmp_path):
    out = tmp_path / "r.parquet"
    invoke("query", recording, "SELECT timestamp, battery_id, voltage_v FROM readings LIMIT 10", "--format", "parquet",
           "--out", out)
    table = pq.read_table(out)
    assert table.num_rows == 10 and str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(table.schema.field("voltage_v").type) == "float"


@pytest.mark.parametrize(("args", "flag", "says"), [
    (["query", "{rec}", "SELECT 1", "--format", "xml"], "--format", "table, csv, json, parquet"),
    (["query", "{rec}", "SELECT 1", "--format", "parquet"], "--out", "--out FILE.parquet"),
    (["query", "{rec}", "SELECT 1", "--out", "{tmp}/t.txt"], "--out", "--format table is for the terminal"),
    (["query", "{rec}", "SELECT 1", "--max-width", "5"], "--max-width", "less than 20"),
    (["export", "{rec}", "--format", "xml", "--out", "{tmp}/x"], "--format", "parquet, csv, json"),
    (["replay", "{rec}", "--format", "csv"], "--format", "not one of json"),
])
def test_a_format_a_command_cannot_write_is_refused_naming_those_it_can(recording, tmp_path, args, flag, says):
    result = CliRunner().invoke(app, [a.format(rec=recording, tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"error: {flag}:" in output and says in output, output
    assert not (tmp_path / "t.txt").exists() and not (tmp_path / "x").exists()
