"""Issue 11, the CLI half: --out is checked before anything is written, --overwrite never destroys
what battsim did not make, and every bad file or argument is `error: …` with exit code 2."""

import os
import shutil

import duckdb
import pytest
from tests.helpers import make_recording
from typer.testing import CliRunner

from battsim.recordings import open_recording
from battsim.recordings.format import DamagedRecordingError, NotARecordingError, reading, verify_recording
from battsim.service.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(result, *texts):
    """Exit 2, an `error:` line, no traceback, and every text in the message."""
    output = " ".join(result.output.split())
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "error:" in output and "Traceback" not in output
    for text in texts:
        assert text in output, output


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "rec.duckdb"
    make_recording(path, days=0.5, interval_s=600)
    return path


@pytest.fixture
def copy(recording, tmp_path):
    """A fresh copy of the recording in its own folder, with an unrelated file beside it."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    return shutil.copy(recording, folder / "rec.duckdb")


def readings_in(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM reading_samples").fetchone()[0]


# ------------------------------------------------------------------------ export: data loss
def test_export_onto_its_own_recording_is_refused(copy):
    before = readings_in(copy)
    refused(invoke("export", copy, "--format", "csv", "--out", copy, "--overwrite"), "--out", "is the input")
    assert readings_in(copy) == before


def test_export_onto_the_folder_holding_the_recording_is_refused(copy):
    refused(invoke("export", copy, "--out", copy.parent, "--overwrite"), "--out", "holds the input")
    assert copy.exists() and (copy.parent / "notes.txt").read_text() == "precious"


def test_export_onto_the_working_directory_is_refused(recording, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("mine")
    refused(invoke("export", recording, "--out", ".", "--overwrite"), "--out", "working directory")
    assert (tmp_path / "mine.txt").read_text() == "mine"


def test_overwrite_replaces_only_a_directory_battsim_made(recording, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    refused(invoke("export", recording, "--out", foreign, "--overwrite"), "--out", "did not make")
    assert (foreign / "thesis.tex").exists()

    ours = tmp_path / "ours"
    assert invoke("export", recording, "--out", ours).exit_code == 0
    assert (ours / ".battsim-export").is_file()
    result = invoke("export", recording, "--out", ours, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "ours"]  # nothing staged left behind


def test_failed_export_leaves_the_previous_file(recording, tmp_path):
    out = tmp_path / "readings.csv"
    out.write_text("previous export")
    damaged = tmp_path / "damaged.duckdb"
    _damage(recording, damaged)
    refused(invoke("export", damaged, "--format", "csv", "--out", out, "--overwrite"), "FILE", "damaged")
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.duckdb", "readings.csv"]


# ------------------------------------------------------------------------ run: bad input before --out
@pytest.fixture
def mars(tmp_path):
    fleet = tmp_path / "mars.toml"
    fleet.write_text('[[sites]]\nsite_id = "OLYMPUS"\ntimezone = "Mars/Olympus"\nstrings = 1\njars_per_string = 2\n')
    return fleet


def test_unknown_time_zone_is_refused_before_out_is_created(mars, tmp_path):
    out = tmp_path / "never.duckdb"
    refused(invoke("run", "--fleet", mars, "--days", "1", "--out", out, "--no-progress"), "--fleet",
            "timezone", "Mars/Olympus", "not an IANA time zone")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mars.toml"]


def test_unknown_time_zone_with_overwrite_leaves_the_old_recording(mars, copy):
    before = readings_in(copy)
    refused(invoke("run", "--fleet", mars, "--days", "1", "--out", copy, "--overwrite", "--no-progress"), "--fleet")
    assert readings_in(copy) == before
    verify_recording(copy)


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe[[sites]]\n", "not UTF-8"),
    (b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
])
def test_unreadable_fleet_files_are_refused(tmp_path, content, message):
    fleet = tmp_path / "fleet.toml"
    fleet.write_bytes(content)
    refused(invoke("run", "--fleet", fleet, "--out", tmp_path / "x.duckdb", "--no-progress"), "--fleet", message)
    assert not (tmp_path / "x.duckdb").exists()


def test_a_directory_as_fleet_is_refused(tmp_path):
    refused(invoke("run", "--fleet", tmp_path, "--out", tmp_path / "x.duckdb", "--no-progress"), "--fleet",
            "is a directory")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_out_where_no_file_can_be_created(tmp_path):
    refused(invoke("run", "--preset", "single-string", "--days", "0.1", "--out", "/proc/x.duckdb", "--no-progress"),
            "--out", "/proc/x.duckdb")


def test_out_directory_is_never_overwritten_by_a_run(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    refused(invoke("run", "--preset", "single-string", "--days", "0.1", "--out", folder, "--overwrite",
                   "--no-progress"), "--out", "is a directory")
    assert (folder / "keep.txt").read_text() == "keep"


def test_run_out_may_not_be_its_own_fleet_file(tmp_path):
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[sites]]\nsite_id = "A"\nstrings = 1\njars_per_string = 2\n')
    refused(invoke("run", "--fleet", fleet, "--days", "0.1", "--out", fleet, "--overwrite", "--no-progress"),
            "--out", "is the input")
    assert "site_id" in fleet.read_text()


def test_run_with_overwrite_replaces_the_file_and_leaves_nothing_staged(copy):
    result = invoke("run", "--preset", "single-string", "--days", "0.1", "--interval", "600", "--out", copy,
                    "--overwrite", "--no-progress")
    assert result.exit_code == 0, result.output
    assert readings_in(copy) == 15 * 24  # 0.1 day every 600 s, 24 jars
    assert sorted(p.name for p in copy.parent.iterdir()) == ["notes.txt", "rec.duckdb"]


# ------------------------------------------------------------------------ query
def test_empty_sql_is_refused(recording):
    refused(invoke("query", recording, ""), "SQL", "no SQL statement")


def test_more_than_one_statement_is_refused(recording):
    result = invoke("query", recording, "SELECT 1 AS one; SELECT 2 AS two")
    refused(result, "SQL", "2 statements")
    assert "two" not in result.stdout


# ------------------------------------------------------------------------ damaged and partial files
def _readings_offset(path) -> int:
    """Where in the file the readings' first block is (DuckDB: three 4 KiB headers, then 256 KiB blocks).
    Since issue 15 a recording has more tables, so the middle of a small file is no longer its readings."""
    with duckdb.connect(str(path), read_only=True) as con:
        block = con.execute("SELECT min(block_id) FROM pragma_storage_info('reading_samples') "
                            "WHERE block_id >= 0").fetchone()[0]
    return 3 * 4096 + block * 262_144


def _damage(source, target):
    """A copy with random bytes over a block of the readings."""
    shutil.copy(source, target)
    with open(target, "r+b") as handle:
        handle.seek(_readings_offset(source) + 1024)
        handle.write(os.urandom(16_384))


def _truncate(source, target):
    """A copy cut short inside the readings' first block."""
    data = source.read_bytes()
    target.write_bytes(data[: _readings_offset(source) + 16_384])


def _partial_schema(source, target):
    shutil.copy(source, target)
    with duckdb.connect(str(target)) as con:
        con.execute("DROP VIEW alarms")
        con.execute("DROP TABLE events")


def _empty_runs(source, target):
    shutil.copy(source, target)
    with duckdb.connect(str(target)) as con:
        con.execute("DELETE FROM runs")


def _newer_format(source, target):
    shutil.copy(source, target)
    with duckdb.connect(str(target)) as con:
        con.execute("UPDATE runs SET format_version = 99")


BROKEN = {
    "damaged": (_damage, "the file is damaged"),
    "truncated": (_truncate, "the file is damaged"),
    "partial": (_partial_schema, "no events table"),
    "empty-runs": (_empty_runs, "the runs table is empty"),
    "newer": (_newer_format, "format version 99"),
}
COMMANDS = {
    "query": lambda f, tmp: ("query", f, "SELECT avg(voltage_v), max(temperature_c) FROM readings"),
    "export": lambda f, tmp: ("export", f, "--format", "csv", "--out", tmp / "out.csv"),
    "report": lambda f, tmp: ("report", f, "--out", tmp / "report"),
    "replay": lambda f, tmp: ("replay", f, "--speed", "max"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", BROKEN)
def test_broken_recordings_are_named_not_blamed_on_the_sql(recording, tmp_path, kind, command):
    make, message = BROKEN[kind]
    broken = tmp_path / f"{kind}.duckdb"
    make(recording, broken)
    result = invoke(*COMMANDS[command](broken, tmp_path))
    refused(result, "FILE", broken.name, message)
    assert "SQL:" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [broken.name]  # no output left behind


@pytest.mark.parametrize("kind", ["damaged", "partial", "empty-runs", "newer"])
def test_the_one_format_check_refuses_them_from_python(recording, tmp_path, kind):
    make, message = BROKEN[kind]
    broken = tmp_path / f"{kind}.duckdb"
    make(recording, broken)
    if kind == "damaged":  # the catalogue is intact; the damage shows when the readings are read
        with pytest.raises(DamagedRecordingError, match="damaged"):
            with open_recording(broken) as rec, reading([broken]):
                rec.sql("SELECT avg(voltage_v) FROM reading_samples")
        return
    with pytest.raises(NotARecordingError, match=message):
        open_recording(broken)
    with pytest.raises(NotARecordingError, match=message):
        verify_recording(broken)


def test_not_a_duckdb_file(tmp_path):
    text = tmp_path / "notes.duckdb"
    text.write_text("hello")
    refused(invoke("query", text, "SELECT 1"), "FILE", "not a DuckDB file")
