"""A disk that fills during `battsim run` (issue 11 item 5), with a real I/O error: the CLI runs in a
child process whose file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes writes past it fail with
EFBIG, exactly as a full disk makes them fail with ENOSPC. No root, no mocks."""

import resource
import signal
import subprocess
import sys

import pytest
from tests.helpers import content_hash, make_recording

from battsim.recordings import open_recording

pytestmark = pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")

# Big enough for the schema and a few batches of 2,400 readings, far too small for 30 days of a string.
LIMIT_BYTES = 1_500_000
RUN = ["run", "--preset", "single-string", "--days", "30", "--interval", "60", "--batch-rows", "2400", "--no-progress"]


def battsim_with_file_limit(limit_bytes: int, *args) -> subprocess.CompletedProcess:
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-c", "from battsim.service.cli import main; main()", *map(str, args)],
                          preexec_fn=limit, capture_output=True, text=True, timeout=240)


def assert_clean_failure(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    message = " ".join(result.stderr.split())
    assert message.startswith("error: --out: writing") and "failed: the file is too large" in message, message
    # Said plainly, not in DuckDB's words ("TransactionContext Error: Failed to commit: ... File too large").
    assert "TransactionContext" not in message and "Failed to commit" not in message, message
    return message


def test_a_disk_that_fills_leaves_a_readable_incomplete_recording(tmp_path):
    out = tmp_path / "year.duckdb"
    message = assert_clean_failure(battsim_with_file_limit(LIMIT_BYTES, *RUN, "--out", out))
    assert f"kept in {out}" in message and "incomplete" in message
    with open_recording(out) as rec:
        assert rec.run.status == "incomplete"
        stored = rec.sql("SELECT count(*) AS n FROM readings")["n"][0]
        assert 0 < stored < 30 * 1440 * 24
        assert rec.run.readings == stored
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.stat().st_size == 0]


def test_a_disk_that_fills_during_overwrite_keeps_the_previous_recording(tmp_path):
    out = tmp_path / "rec.duckdb"
    make_recording(out, days=0.5, interval_s=600)
    before = content_hash(out)
    message = assert_clean_failure(battsim_with_file_limit(LIMIT_BYTES, *RUN, "--out", out, "--overwrite"))
    assert content_hash(out) == before
    partial = tmp_path / "rec.incomplete.duckdb"
    assert f"kept in {partial}" in message
    with open_recording(partial) as rec:
        assert rec.run.status == "incomplete"
    with open_recording(out) as rec:
        assert rec.run.status == "complete"


def test_a_disk_too_full_for_even_the_schema_leaves_nothing(tmp_path):
    out = tmp_path / "never.duckdb"
    message = assert_clean_failure(battsim_with_file_limit(20_000, *RUN, "--out", out))
    assert "kept in" not in message
    assert list(tmp_path.iterdir()) == []
