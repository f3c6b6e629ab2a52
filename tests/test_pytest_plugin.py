"""The pytest plugin (battsim_recording, battsim_golden), virtual_time, and the example suite in examples/."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import battsim
from battsim.testing import virtual_time

REPO = Path(__file__).resolve().parent.parent
# The entry point registers the plugin when battsim is installed; -p loads it where it is not (a bare
# checkout), and -p no:battsim keeps the two from registering the same module twice.
PLUGIN = ["-p", "no:battsim", "-p", "battsim.testing.plugin"]


def pytest_run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", *PLUGIN, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})


def test_the_example_suite_passes_and_its_second_run_reads_the_cache(tmp_path):
    cache = f"cache_dir={tmp_path / 'cache'}"
    first = pytest_run("examples/alarm_rule", "-o", cache, cwd=REPO)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 passed" in first.stdout and "battsim: 1 recording(s) simulated, 0 read from the cache" in first.stdout
    second = pytest_run("examples/alarm_rule", "-o", cache, cwd=REPO)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "battsim: 0 recording(s) simulated, 1 read from the cache" in second.stdout


GOLDEN_TEST = '''
import os

def test_outage_day(battsim_recording, battsim_golden):
    rec = battsim_recording(preset="single-string", days=0.25, interval_s=300, seed=int(os.environ["SEED"]),
                            timeline="daily-outage")
    battsim_golden(rec)
'''


def test_golden_is_written_on_request_and_a_change_fails_with_the_differing_rows(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_golden.py").write_text(textwrap.dedent(GOLDEN_TEST))
    missing = pytest_run(cwd=tmp_path, env={"SEED": "1"})
    assert missing.returncode == 1 and "no golden digest at" in missing.stdout and "--battsim-update-golden" in missing.stdout
    written = pytest_run("--battsim-update-golden", cwd=tmp_path, env={"SEED": "1"})
    assert written.returncode == 0, written.stdout
    assert (tmp_path / "golden" / "test_outage_day.json").is_file()
    assert pytest_run(cwd=tmp_path, env={"SEED": "1"}).returncode == 0
    changed = pytest_run(cwd=tmp_path, env={"SEED": "2"})
    assert changed.returncode == 1
    assert "differs from its golden digest" in changed.stdout and "reading_samples: different" in changed.stdout
    assert "sites: same" in changed.stdout
    assert "battery_id=BKK_DC1_SYS01_STR01_BAT001: voltage_v " in changed.stdout  # the first differing reading


def test_importing_the_plugin_loads_nothing_heavy():
    probe = ("import sys, battsim.testing.plugin; heavy = [m for m in ('duckdb', 'polars', 'numpy', 'simpy', "
             "'freezegun', 'battsim.engine', 'battsim.recordings') if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_virtual_time_puts_the_wall_clock_at_each_frame_and_gives_it_back():
    with battsim.simulate(preset="single-string", days=0.05, interval_s=300, seed=3) as rec:
        expected = list(rec.sql("SELECT DISTINCT timestamp FROM reading_samples ORDER BY 1")["timestamp"])
        seen = []
        with virtual_time(rec) as frames:
            for frame in frames:
                assert frame.readings.height == 24 and set(frame.readings["timestamp"]) == {frame.time}
                assert datetime.now(UTC) == frame.time and time.time() == frame.time.timestamp()
                seen.append((frame.time, time.monotonic()))
    assert [at for at, _ in seen] == expected and len(expected) == 15
    steps = [b - a for (_, a), (_, b) in zip(seen, seen[1:])]
    assert steps == [300.0] * 14  # monotonic moves by exactly the interval, however long the frame took
    assert abs(datetime.now(UTC) - datetime.fromtimestamp(time.time(), UTC)).total_seconds() < 5
    assert datetime.now(UTC).year >= 2026 and datetime.now(UTC) != expected[-1]
