"""One seed fixes everything: same flags → same readings, whatever the flush size or progress bar."""

from tests.helpers import content_hash, make_recording
from typer.testing import CliRunner

from battsim.service.cli import app


def test_same_seed_same_readings_other_seed_other_readings(tmp_path):
    make_recording(tmp_path / "a.duckdb", preset="thailand-9x24", days=0.5, seed=11)
    make_recording(tmp_path / "b.duckdb", preset="thailand-9x24", days=0.5, seed=11)
    make_recording(tmp_path / "c.duckdb", preset="thailand-9x24", days=0.5, seed=12)
    assert content_hash(tmp_path / "a.duckdb") == content_hash(tmp_path / "b.duckdb")
    assert content_hash(tmp_path / "a.duckdb") != content_hash(tmp_path / "c.duckdb")


def test_flush_size_changes_nothing(tmp_path):
    make_recording(tmp_path / "big.duckdb", preset="single-string", days=0.25, seed=5, batch_rows=100_000)
    make_recording(tmp_path / "small.duckdb", preset="single-string", days=0.25, seed=5, batch_rows=24 * 7)
    make_recording(tmp_path / "one.duckdb", preset="single-string", days=0.25, seed=5, batch_rows=1)
    expected = content_hash(tmp_path / "big.duckdb")
    assert content_hash(tmp_path / "small.duckdb") == expected
    assert content_hash(tmp_path / "one.duckdb") == expected


def test_progress_bar_changes_nothing(tmp_path):
    runner = CliRunner()
    for name, flag in (("bar.duckdb", "--progress"), ("quiet.duckdb", "--no-progress")):
        result = runner.invoke(app, ["run", "--preset", "single-string", "--days", "0.5", "--seed", "9",
                                     "--out", str(tmp_path / name), flag])
        assert result.exit_code == 0, result.output
    assert content_hash(tmp_path / "bar.duckdb") == content_hash(tmp_path / "quiet.duckdb")
