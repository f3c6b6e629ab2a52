"""`battsim run` and `battsim presets`: the summary, and bad input refused before anything runs."""

import os

import pytest
from typer.testing import CliRunner

from battsim.service.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_run_prints_a_summary_with_an_example_query(tmp_path):
    out = tmp_path / "run.duckdb"
    result = invoke("run", "--preset", "single-string", "--days", "1", "--interval", "300", "--out", str(out),
                    "--no-progress")
    assert result.exit_code == 0, result.output
    for text in ("readings", "6,912", "virtual span", "wall time", "readings/s", str(out), "battsim query"):
        assert text in result.output
    assert out.exists()


def test_run_until_and_start(tmp_path):
    out = tmp_path / "until.duckdb"
    result = invoke("run", "--preset", "single-string", "--start", "2026-06-01T00:00+07:00",
                    "--until", "2026-06-01T06:00+07:00", "--interval", "600", "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "864" in result.output  # 36 ticks × 24 jars


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "nope"], "--preset: unknown preset 'nope'; presets: thailand-9x24"),
    (["--days", "0"], "--days"),
    (["--days", "-3"], "--days"),
    (["--interval", "0"], "--interval: 0 is outside 1-3600"),
    (["--interval", "3601"], "--interval: 3601 is outside 1-3600"),
    (["--start", "yesterday"], "--start: 'yesterday' is not an ISO 8601"),
    (["--until", "2025-01-01"], "--until"),
    (["--days", "1", "--until", "2026-02-01"], "--days/--until"),
    (["--preset", "single-string", "--fleet", "x.toml"], "--preset/--fleet"),
])
def test_bad_flags_are_refused_with_the_flag_named(tmp_path, args, message):
    out = tmp_path / "never.duckdb"
    result = invoke("run", *args, "--out", str(out), "--no-progress")
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "exists.duckdb"
    out.write_bytes(b"precious")
    result = invoke("run", "--preset", "single-string", "--days", "0.1", "--out", str(out), "--no-progress")
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_bytes() == b"precious"
    result = invoke("run", "--preset", "single-string", "--days", "0.1", "--out", str(out), "--no-progress",
                    "--overwrite")
    assert result.exit_code == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = invoke("run", "--days", "0.1", "--out", str(locked / "x.duckdb"), "--no-progress")
    assert result.exit_code == 2 and "not writable" in result.output


def test_missing_directory_is_refused(tmp_path):
    result = invoke("run", "--days", "0.1", "--out", str(tmp_path / "no" / "x.duckdb"), "--no-progress")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_malformed_fleet_file_names_the_key_and_line(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[sites]]\nsite_id = "A"\njars_per_string = "many"\n')
    result = invoke("run", "--fleet", str(fleet), "--out", str(tmp_path / "x.duckdb"), "--no-progress")
    assert result.exit_code == 2
    assert "sites.0.jars_per_string" in result.output
    fleet.write_text('[[sites]]\nsite_id = "A"\nstrings = \n')
    result = invoke("run", "--fleet", str(fleet), "--out", str(tmp_path / "x.duckdb"), "--no-progress")
    assert result.exit_code == 2 and "line 3" in result.output


def test_custom_fleet_runs(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[sites]]\nsite_id = "LAB"\njars_per_string = 2\nmodel = "GS GPL12-100"\n')
    result = invoke("run", "--fleet", str(fleet), "--days", "0.1", "--out", str(tmp_path / "x.duckdb"),
                    "--no-progress")
    assert result.exit_code == 0, result.output


def test_presets_lists_all_three():
    result = invoke("presets")
    assert result.exit_code == 0
    for name in ("thailand-9x24", "thailand-full", "single-string", "1944"):
        assert name in result.output


def test_no_alarms_flag_skips_alarm_events(tmp_path):
    import duckdb

    for flag, expect_alarms in (("--alarms", True), ("--no-alarms", False)):
        out = tmp_path / f"{flag}.duckdb"
        result = invoke("run", "--preset", "thailand-9x24", "--days", "0.25", "--out", str(out), "--no-progress", flag)
        assert result.exit_code == 0, result.output
        with duckdb.connect(str(out), read_only=True) as con:
            alarms = con.execute("SELECT count(*) FROM events WHERE kind = 'alarm_raised'").fetchone()[0]
        assert (alarms > 0) == expect_alarms
