"""Report and analysis speed on a large recording, against a bare DuckDB scan of the same file.

    .venv/bin/python bench/bench_report.py RECORDING [--repeat N]

Prints, in one run on this machine:
  * the baseline: DuckDB summing the columns the report reads, over every stored reading,
  * `battsim report`'s wall and CPU time, split into the scan, the derived series, the views and
    the charts, and its ratio to the baseline,
  * the wall time of a query of each analysis view (whole fleet, whole span), as this package
    defines it.
With ``--repeat N`` the recording is first copied into a file N times as long (the readings
repeated, shifted by the span each time), so a month simulated in minutes stands in for a year
when measuring the analysis (its cost depends on the number of readings, not their values).
Target (issue 7): a year of the full fleet (about a billion readings) reports in under a minute.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import duckdb

from battsim.recordings.report import write_report
from battsim.recordings.views import VIEW_NAMES, view_sql
from results_file import Measurement


def repeated(source: Path, times: int) -> Path:
    """A copy of ``source`` whose readings repeat ``times`` times back to back."""
    target = source.with_name(f"{source.stem}-x{times}.duckdb")
    if target.exists():
        return target
    shutil.copy(source, target)
    with duckdb.connect(str(target)) as con:
        start, end, interval = con.execute('SELECT start, "end", interval_s FROM runs').fetchone()
        span_s = (end - start).total_seconds() + interval
        for k in range(1, times):
            began = time.perf_counter()
            con.execute(f"INSERT INTO reading_samples SELECT * REPLACE (timestamp + INTERVAL {int(k * span_s)} "
                        "SECOND AS timestamp) FROM reading_samples WHERE timestamp <= ?", [end])
            print(f"  copy {k + 1}/{times} in {time.perf_counter() - began:.1f} s")
        con.execute('UPDATE runs SET "end" = (SELECT max(timestamp) FROM reading_samples), '
                    "readings = (SELECT count(*) FROM reading_samples)")
        con.execute("CHECKPOINT")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/report"))
    args = parser.parse_args()
    measurement = Measurement("bench_report")
    recording = repeated(args.recording, args.repeat) if args.repeat > 1 else args.recording

    with duckdb.connect(str(recording), read_only=True) as con:
        readings, days = con.execute('SELECT readings, epoch("end" - start) / 86400 FROM runs').fetchone()
        began = time.perf_counter()
        con.execute("SELECT sum(epoch_us(timestamp)), sum(battery_key), sum(voltage_v), sum(current_a), "
                    "sum(temperature_c), sum(soh_pct), sum(true_soh_pct) FROM reading_samples").fetchall()
        baseline_s = time.perf_counter() - began
    print(f"recording: {recording} ({readings:,} readings, {days:.1f} days)")
    print(f"baseline, DuckDB summing the 7 columns the report reads: {baseline_s:.2f} s "
          f"({readings / baseline_s / 1e6:,.0f} M readings/s)")

    args.out.parent.mkdir(parents=True, exist_ok=True)  # bench/results/ is git-ignored: absent in a fresh clone
    shutil.rmtree(args.out, ignore_errors=True)  # the previous run's charts
    cpu = time.process_time()
    report = write_report(recording, args.out)
    cpu_s = time.process_time() - cpu
    parts = ", ".join(f"{name.removesuffix('_s')} {seconds:.1f} s" for name, seconds in report.timings_s.items())
    print(f"battsim report: {report.wall_s:.1f} s wall, {cpu_s:.1f} s CPU in this process ({parts}); "
          f"{report.wall_s / baseline_s:.1f} x the baseline")

    views = {}
    with duckdb.connect(str(recording), read_only=True) as con:
        for name in VIEW_NAMES:
            began = time.perf_counter()
            # This package's SQL of the view, not the one stored in the file (which may be older).
            rows = con.sql(view_sql(name)).to_arrow_table().num_rows
            elapsed = time.perf_counter() - began
            views[name] = round(elapsed, 2)
            print(f"view {name}: {rows:,} rows in {elapsed:.1f} s ({elapsed / baseline_s:.1f} x the baseline)")
    measurement.save({"readings": readings, "days": round(days, 2), "baseline_s": round(baseline_s, 2),
                      "report_wall_s": round(report.wall_s, 1), "report_cpu_s": round(cpu_s, 1),
                      "ratio": round(report.wall_s / baseline_s, 1), "views_s": views})


if __name__ == "__main__":
    main()
