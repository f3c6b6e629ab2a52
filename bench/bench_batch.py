"""Batch throughput: simulate and record the full fleet, against DuckDB's own ingest of the same rows.

    .venv/bin/python bench/bench_batch.py [--days 7] [--memory-days 30]

Prints, in one run on this machine:
  * end-to-end readings/s of `thailand-full` at a 60 s interval into a fresh recording, and the rows/s
    of each table the run writes (readings, string channels, ohmic tests, events),
  * DuckDB's ingest rate of the same rows (read back from the recording into in-memory Arrow batches
    of the same size) into a fresh file with the same schema, one transaction per batch, and the ratio,
  * peak resident memory of the simulating process (and of a longer run with --memory-days).
Targets (issue 2): >= 1,000,000 readings/s, >= 0.5 × DuckDB's ingest rate, < 500 MB for 30 days.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb

from battsim.engine.fleet import get_preset
from battsim.engine.world import DEFAULT_BATCH_ROWS, DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from harness import duckdb_ingest
from results_file import Measurement

TABLES = ("reading_samples", "string_readings", "ohmic_tests", "events")


def simulate(days: float, out: Path, batch_rows: int, result: multiprocessing.Queue) -> None:
    run = BatchRun(fleet=get_preset("thailand-full"), out=out, seed=1, start=DEFAULT_START,
                   end=DEFAULT_START + timedelta(days=days), interval_s=60, preset="thailand-full",
                   batch_rows=batch_rows)
    summary = record_run(run)
    result.put((summary.readings, summary.wall_s, peak_resident_mb()))


def rows_per_table(path: Path) -> dict[str, int]:
    """What the run wrote, table by table (the readings, and since issue 15 the string channels and tests)."""
    with duckdb.connect(str(path), read_only=True) as con:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def peak_resident_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux carries the forking
    parent's resident size into a spawned child's ru_maxrss across exec, which would count the
    benchmark's own memory as the simulation's."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def simulate_in_child(days: float, out: Path, batch_rows: int) -> tuple[int, float, float]:
    """Run in a fresh process so its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    child = context.Process(target=simulate, args=(days, out, batch_rows, result))
    child.start()
    outcome = result.get()
    child.join()
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0, help="virtual days of the throughput run")
    parser.add_argument("--memory-days", type=float, default=0.0, help="also run this many days for peak memory")
    parser.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    args = parser.parse_args()
    measurement = Measurement("bench_batch")

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        readings, wall_s, peak_mb = simulate_in_child(args.days, scratch / "sim.duckdb", args.batch_rows)
        sim_rate = readings / wall_s
        tables = rows_per_table(scratch / "sim.duckdb")
        ingested, ingest_s = duckdb_ingest([scratch / "sim.duckdb"], readings, scratch / "ingest.duckdb",
                                           args.batch_rows, sample_rows=2_000_000)
        ingest_rate = ingested / ingest_s
        print(f"fleet                 thailand-full, 1,944 jars, 60 s interval, {args.days:g} days")
        print(f"simulate + record     {readings:,} readings in {wall_s:.2f} s = {sim_rate:,.0f} readings/s")
        for table, rows in tables.items():
            print(f"  {table:<19} {rows:,} rows = {rows / wall_s:,.0f} rows/s")
        print(f"  all tables          {sum(tables.values()) / wall_s:,.0f} rows/s")
        print(f"duckdb ingest alone   {ingested:,} rows in {ingest_s:.2f} s = {ingest_rate:,.0f} rows/s")
        print(f"ratio                 {sim_rate / ingest_rate:.2f} of DuckDB's own ingest rate (target >= 0.5)")
        print(f"peak memory           {peak_mb:,.0f} MB ({args.days:g} days)")
        figures = {"days": args.days, "readings": readings, "wall_s": round(wall_s, 2),
                   "readings_per_s": round(sim_rate), "rows_per_s": {t: round(r / wall_s) for t, r in tables.items()},
                   "all_rows_per_s": round(sum(tables.values()) / wall_s), "duckdb_ingest_rows_per_s": round(ingest_rate),
                   "ratio": round(sim_rate / ingest_rate, 2), "peak_mb": round(peak_mb)}
        if args.memory_days:
            readings, wall_s, peak_mb = simulate_in_child(args.memory_days, scratch / "long.duckdb", args.batch_rows)
            print(f"peak memory           {peak_mb:,.0f} MB ({args.memory_days:g} days, {readings:,} readings, "
                  f"{readings / wall_s:,.0f} readings/s)")
            figures["memory_run"] = {"days": args.memory_days, "readings": readings, "peak_mb": round(peak_mb),
                                     "readings_per_s": round(readings / wall_s)}
    measurement.save(figures)


if __name__ == "__main__":
    main()
