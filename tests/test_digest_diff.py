"""battsim hash / battsim diff: a digest of what was recorded, and what differs between two recordings."""

from __future__ import annotations

import json
import os
import subprocess

import duckdb
import pytest
from tests.test_service_helpers import battsim_command

import battsim
from battsim.recordings.diff import attached, diff_recordings
from battsim.recordings.digest import RecordingDigest, recording_digest

RUN = dict(preset="single-string", days=0.5, timeline="daily-outage", interval_s=120)


def battsim_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*battsim_command(), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"})


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    directory = tmp_path_factory.mktemp("digest")
    paths = {"a": directory / "a.duckdb", "same": directory / "same.duckdb", "other": directory / "other.duckdb"}
    battsim.simulate(**RUN, seed=1, out=paths["a"]).close()
    battsim.simulate(**RUN, seed=1, out=paths["same"], batch_rows=97).close()  # other batches, run id, created_at
    battsim.simulate(**RUN, seed=2, out=paths["other"]).close()
    return paths


def digest_of(path) -> RecordingDigest:
    with attached({"a": path}) as connection:
        return recording_digest(connection, "a")


def test_same_seed_same_digest_whatever_the_batch_size_run_id_and_file(recordings):
    a, same = digest_of(recordings["a"]), digest_of(recordings["same"])
    assert a.sha256 == same.sha256 and a.tables == same.tables
    assert recordings["a"].read_bytes() != recordings["same"].read_bytes()  # the files themselves differ
    ids = [duckdb.connect(str(recordings[name]), read_only=True).execute("SELECT id FROM runs").fetchall()
           for name in ("a", "same")]
    assert ids[0] != ids[1]


def test_in_memory_recording_has_the_files_digest(recordings):
    with battsim.simulate(**RUN, seed=1) as rec:
        assert recording_digest(rec.connection).sha256 == digest_of(recordings["a"]).sha256


def test_digest_sees_one_changed_value_and_row_order_does_not_matter(recordings, tmp_path):
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(recordings["a"].read_bytes())
    with duckdb.connect(str(copy)) as connection:  # the same rows, stored in reverse order
        connection.execute("CREATE TABLE r AS SELECT * FROM reading_samples ORDER BY timestamp DESC, battery_key DESC")
        connection.execute("DELETE FROM reading_samples")
        connection.execute("INSERT INTO reading_samples SELECT * FROM r")
        connection.execute("DROP TABLE r")
    assert digest_of(copy).sha256 == digest_of(recordings["a"]).sha256
    with duckdb.connect(str(copy)) as connection:
        connection.execute("UPDATE reading_samples SET voltage_v = voltage_v + 0.001 "
                           "WHERE battery_key = 3 AND timestamp = (SELECT max(timestamp) FROM reading_samples)")
    changed = digest_of(copy)
    assert changed.tables["reading_samples"] != digest_of(recordings["a"]).tables["reading_samples"]
    assert changed.tables["events"] == digest_of(recordings["a"]).tables["events"]
    with attached({"a": recordings["a"], "b": copy}) as connection:
        result = diff_recordings(connection)
        assert [name for name, t in result.tables.items() if not t.equal] == ["reading_samples"]
        readings = result.tables["reading_samples"]
        assert readings.differing_rows == 1 and list(readings.first[0].columns) == ["voltage_v"]
        assert readings.first[0].key["battery_id"] == "BKK_DC1_SYS01_STR01_BAT004"
        va, vb = readings.first[0].columns["voltage_v"]
        assert vb - va == pytest.approx(0.001, abs=1e-4)
        within = diff_recordings(connection, tolerance=0.01)
        assert within.equal and within.tables["reading_samples"].status == "same within tolerance"


def test_cli_hash_prints_each_table_and_the_recording(recordings):
    result = battsim_cli("hash", str(recordings["a"]))
    assert result.returncode == 0, result.stderr
    lines = dict((line.split()[1], line.split()[0]) for line in result.stdout.splitlines())
    assert lines["recording"] == digest_of(recordings["a"]).sha256
    assert {"reading_samples", "events", "batteries", "runs"} <= set(lines)
    as_json = json.loads(battsim_cli("hash", str(recordings["a"]), "--json").stdout)
    assert RecordingDigest.from_json(as_json) == digest_of(recordings["a"])


def test_cli_diff_same_seed_exits_0(recordings):
    result = battsim_cli("diff", str(recordings["a"]), str(recordings["same"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "same"


def test_cli_diff_other_seed_names_the_first_differing_reading(recordings):
    result = battsim_cli("diff", str(recordings["a"]), str(recordings["other"]), "--rows", "1")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("reading_samples "))
    assert "different" in lines[at]
    first = lines[at + 1]
    assert "battery_id=BKK_DC1_SYS01_STR01_BAT001" in first and "voltage_v " in first and " vs " in first
    as_json = json.loads(battsim_cli("diff", str(recordings["a"]), str(recordings["other"]), "--json").stdout)
    assert as_json["equal"] is False and as_json["tables"]["runs"]["first"][0]["columns"]["seed"] == {"a": 1, "b": 2}
    assert as_json["tables"]["sites"]["status"] == "same"


@pytest.mark.parametrize(("args", "named"), [
    (["--tolerance", "-1"], "--tolerance"), (["--tolerance", "nan"], "--tolerance"), (["--rows", "0"], "--rows"),
])
def test_cli_diff_bad_flags_exit_2(recordings, args, named):
    result = battsim_cli("diff", str(recordings["a"]), str(recordings["same"]), *args)
    assert result.returncode == 2 and f"error: {named}:" in result.stderr


def test_cli_not_a_recording_exits_2(recordings, tmp_path):
    (tmp_path / "x.duckdb").write_text("not a database")
    for args in (["hash", str(tmp_path / "missing.duckdb")], ["diff", str(recordings["a"]), str(tmp_path / "x.duckdb")]):
        result = battsim_cli(*args)
        assert result.returncode == 2 and "error: FILE:" in result.stderr and "Traceback" not in result.stderr
