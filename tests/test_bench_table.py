"""The README's performance table from bench/results.json: a benchmark that ran gives its row from what it
measured, one that never ran is shown as not measured (with the make target that measures it), not dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
from tests.helpers import make_recording

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_table  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


def test_a_bench_report_run_becomes_its_row_and_the_others_say_how_to_measure_them(tmp_path):
    recording = tmp_path / "day.duckdb"
    make_recording(recording, days=1.0)
    with duckdb.connect(str(recording), read_only=True) as con:
        (readings,) = con.execute("SELECT readings FROM runs").fetchone()
    results = tmp_path / "results.json"
    subprocess.run([sys.executable, "bench/bench_report.py", str(recording), "--repeat", "2", "--out",
                    str(tmp_path / "report")], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
                   env={**os.environ, "BATTSIM_BENCH_RESULTS": str(results)})

    rows = {line.split(" | ")[0]: line for line in bench_table.table(json.loads(results.read_text())).splitlines()
            if line.startswith("| `")}
    report = rows[f"| `bench/bench_report.py {recording} --repeat 2 --out {tmp_path / 'report'}`"]
    assert f"{2 * readings:,} readings (2 days)" in report and "s CPU" in report and "slowest view" in report
    assert rows["| `bench/bench_batch.py`"].endswith("| not measured yet: `make bench` records it | |")
    assert "| not measured yet: " not in report


def test_a_report_missing_from_the_results_is_a_row_naming_make_bench_report():
    results = json.loads(bench_table.RESULTS.read_text())
    results.pop("bench_report", None)
    generated = bench_table.table(results)
    assert "| `bench/bench_report.py` | `battsim report` against DuckDB" in generated
    assert "not measured yet: `make bench-report` records it" in generated
    assert generated.count("\n| `") == len(bench_table.FIGURES)  # every benchmark has its row
