"""Fleets of any size: readings/s and peak memory per worker process, and what a second worker buys.

    .venv/bin/python bench/bench_scale.py [--sizes 24,1944,20000,100000] [--million]

For each fleet size (24: single-string, 1,944: thailand-full, larger: national-telecom scaled with
--sites to about that many jars) a sharded run (battsim.scale.runner, the code behind
``battsim run --workers N``) simulates and records it, with 1 worker and, for the large fleets, 2, and
prints readings/s end to end (plan, spawn, simulate, record, manifest), the peak resident memory of each
worker (VmHWM, reported per part in the manifest) and the speed-up of 2 workers over 1 (goal >= 1.7 on
2 cores). The baseline, measured in the same run: DuckDB's own ingest of the same number of rows, read
back from the largest run's parts into Arrow batches of the recorder's size and inserted into a fresh
file with the recording schema, one transaction per batch. ``--million`` adds 1 M jars at a 300 s
interval for one virtual day with 2 workers. Figures go to bench/results.json (bench_scale).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from battsim.engine.fleet import get_preset, national_telecom
from battsim.engine.world import DEFAULT_START
from battsim.recordings.batch import BatchRun
from battsim.scale.manifest import read_manifest
from battsim.scale.plan import DEFAULT_PART_JARS, site_jars
from battsim.scale.runner import ShardedRun, record_shards
from battsim.scenarios.default_outages import with_random_outages
from harness import duckdb_ingest
from results_file import Measurement

JARS_PER_TELECOM_SITE = 22_336 / 2_000  # the preset's mix (engine/fleet.py TELECOM_PLANTS)


def fleet_of(jars: int):
    if jars == 24:
        return get_preset("single-string"), "single-string"
    if jars == 1_944:
        return get_preset("thailand-full"), "thailand-full"
    return national_telecom(max(1, round(jars / JARS_PER_TELECOM_SITE))), "national-telecom"


def span_hours(jars: int) -> tuple[float, int]:
    """Virtual hours and interval: about 10-30 M readings for the large fleets, a day for the small."""
    if jars <= 2_000:
        return 24.0, 60
    if jars <= 30_000:
        return 12.0, 60
    return 12.0, 300


def sharded(spec, name: str, out: Path, workers: int, hours: float, interval_s: int) -> dict:
    batch = BatchRun(fleet=spec, out=out, seed=1, end=DEFAULT_START + timedelta(hours=hours), interval_s=interval_s,
                     preset=name, timelines=with_random_outages([], True))
    began = time.perf_counter()
    summary = record_shards(ShardedRun(batch, workers=workers, max_part_jars=DEFAULT_PART_JARS))
    wall_s = time.perf_counter() - began
    parts = read_manifest(out)["parts"]
    return {"workers": workers, "parts": len(parts), "readings": summary.readings, "wall_s": round(wall_s, 2),
            "readings_per_s": round(summary.readings / wall_s),
            "worker_peak_mb": round(max(p["worker_peak_rss_mb"] for p in parts))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="24,1944,20000,100000", help="fleet sizes in jars, comma-separated")
    parser.add_argument("--million", action="store_true", help="also 1 M jars at 300 s for one virtual day, 2 workers")
    args = parser.parse_args()
    measurement = Measurement("bench_scale")
    figures: dict = {"part_jars": DEFAULT_PART_JARS, "sizes": {}}
    largest = None
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for jars in [int(size) for size in args.sizes.split(",")]:
            spec, name = fleet_of(jars)
            actual = sum(site_jars(site) for site in spec.sites)
            hours, interval_s = span_hours(jars)
            runs = [sharded(spec, name, scratch / f"{jars}-w1", 1, hours, interval_s)]
            if jars >= 10_000:
                runs.append(sharded(spec, name, scratch / f"{jars}-w2", 2, hours, interval_s))
            entry = {"fleet": name, "jars": actual, "sites": len(spec.sites), "hours": hours, "interval_s": interval_s,
                     "runs": runs}
            if len(runs) == 2:
                entry["speedup_2_over_1"] = round(runs[1]["readings_per_s"] / runs[0]["readings_per_s"], 2)
                largest = (jars, runs[1]["readings"], runs[1]["readings_per_s"])
            figures["sizes"][str(actual)] = entry
            for run in runs:
                print(f"{name:<17} {actual:>9,} jars  {run['workers']} worker(s)  {run['parts']:>3} parts  "
                      f"{run['readings']:>12,} readings  {run['wall_s']:>7.1f} s  {run['readings_per_s']:>10,} readings/s  "
                      f"peak {run['worker_peak_mb']:,} MB/worker")
            if "speedup_2_over_1" in entry:
                print(f"{'':<17} speed-up of 2 workers over 1: {entry['speedup_2_over_1']:.2f} (goal >= 1.7)")
        if largest is not None:
            jars, rows, rate = largest
            parts = sorted((scratch / f"{jars}-w2").glob("part-*.duckdb"))
            inserted, seconds = duckdb_ingest(parts, rows, scratch / "ingest.duckdb")
            ingest = inserted / seconds
            figures["duckdb_ingest_rows_per_s"] = round(ingest)
            figures["ratio_2_workers_to_ingest"] = round(rate / ingest, 2)
            print(f"duckdb ingest alone  {ingest:,.0f} rows/s (one process); 2 workers at {rate / ingest:.2f} of it")
        if args.million:
            spec, name = fleet_of(1_000_000)
            run = sharded(spec, name, scratch / "million", 2, 24.0, 300)
            figures["million"] = {"jars": sum(site_jars(s) for s in spec.sites), **run}
            print(f"national-telecom 1 M jars, 300 s, 1 day, 2 workers: {run['readings_per_s']:,} readings/s, "
                  f"{run['wall_s']:.0f} s, peak {run['worker_peak_mb']} MB/worker")
    measurement.save(figures)


if __name__ == "__main__":
    main()
