"""Replay: throughput at max speed against DuckDB's own scan, and pacing error at 1x, 60x and 3600x.

    .venv/bin/python bench/bench_replay.py [--days 1] [--memory-days 3] [--pacing-seconds 15 10 5]

Prints, in one run on this machine:
  * throughput at ``max``: readings/s of complete telemetry frames (JSON) handed to an in-process
    consumer, and through ``battsim replay --speed max`` into a pipe read by another process; for the
    full fleet (1,944 readings a frame) and one string (24 a frame);
  * the baseline: DuckDB scanning the same rows to Arrow (no JSON), streamed, in the same run; the ratio;
  * the peak memory of `battsim replay --speed max` for two lengths of recording (it should not grow);
  * pacing error (frame sent minus when it was due, p50 / p99 / max) at 1x, 60x and 3600x, driven as the
    CLI drives the player (sleep until the next frame is due, never a sleep per frame), each bounded in time.
Targets (issue 6): >= 1,000,000 readings/s at max; pacing error < 10 ms at 1x-3600x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np

from battsim.engine.fleet import get_preset
from battsim.engine.world import DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.replay import Player, ReplaySource
from results_file import Measurement


def record(out: Path, preset: str, hours: float, interval_s: int) -> int:
    summary = record_run(BatchRun(fleet=get_preset(preset), out=out, seed=1, start=DEFAULT_START,
                                  end=DEFAULT_START + timedelta(hours=hours), interval_s=interval_s, preset=preset))
    return summary.readings


def replay_in_process(path: Path) -> tuple[int, float, int]:
    """Every frame at max, each handed to a consumer that takes the bytes (writes them to /dev/null)."""
    source = ReplaySource.open(path)
    player = Player(source, source.window(), speed="max")
    began = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        while player.state != "ended":
            for frame in player.poll():
                sink.write(frame.payload)
    wall_s = time.perf_counter() - began
    player.close()
    source.close()
    return player.readings, wall_s, player.frames


def replay_cli_pipe(path: Path) -> tuple[int, float, float]:
    """`battsim replay --speed max` into a pipe this process reads: lines, seconds from the first byte
    to the end (the command's start-up is not counted), and the command's peak resident memory (MB)."""
    process = subprocess.Popen([str(Path(sys.executable).parent / "battsim"), "replay", str(path), "--speed", "max"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    first = process.stdout.read(1)
    began = time.perf_counter()
    lines = first.count(b"\n")
    while chunk := process.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    wall_s = time.perf_counter() - began
    _, _, usage = os.wait4(process.pid, 0)
    return lines, wall_s, usage.ru_maxrss / 1024


def duckdb_scan(path: Path) -> tuple[int, float]:
    """DuckDB's own rate for the same rows: every column to Arrow, streamed in batches (no JSON)."""
    with duckdb.connect(str(path), read_only=True) as con:
        began = time.perf_counter()
        reader = con.sql("SELECT * FROM reading_samples").to_arrow_reader(65_536)
        rows = sum(batch.num_rows for batch in reader)
        return rows, time.perf_counter() - began


def pacing(path: Path, speed: float, wall_seconds: float) -> tuple[np.ndarray, float]:
    """Lateness of each frame (s), handed over minus due, and how long the preroll (first query) took.

    The player starts its clock once the first chunk is in memory; tick k is then due at
    ``started + k·interval / speed``. ``started`` is read just after the constructor returns, so a
    constant error of a few microseconds is in every figure (it makes frames look early, not late).
    """
    source = ReplaySource.open(path)
    window = source.window(start="+60s", end=f"+{60 + speed * wall_seconds:.0f}s")
    began = time.monotonic()
    player = Player(source, window, speed=speed)
    started = time.monotonic()
    late: list[float] = []
    while player.state != "ended":
        frames = player.poll()
        now = time.monotonic()
        late.extend(now - (started + (frame.timestamp_us - window.start_us) / 1e6 / speed) for frame in frames)
        delay = player.wall_delay()
        if delay > 0 and player.state != "ended":
            time.sleep(min(delay, 0.5))
    player.close()
    source.close()
    return np.array(late), started - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=1.0, help="Full-fleet recording length for throughput.")
    parser.add_argument("--memory-days", type=float, default=3.0,
                        help="A longer full-fleet recording: the replay's peak memory should not grow with it.")
    parser.add_argument("--pacing-seconds", type=float, nargs=3, default=(15.0, 10.0, 5.0),
                        metavar=("AT_1X", "AT_60X", "AT_3600X"), help="Wall seconds of each pacing run.")
    args = parser.parse_args()
    measurement = Measurement("bench_replay")
    figures: dict = {"throughput": {}, "pacing": {}}
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full.duckdb"
        longer = Path(tmp) / "longer.duckdb"
        one = Path(tmp) / "string.duckdb"
        print(f"recordings: thailand-full {args.days:g} d at 60 s ({record(full, 'thailand-full', 24 * args.days, 60):,}"
              f" readings) and {args.memory_days:g} d ({record(longer, 'thailand-full', 24 * args.memory_days, 60):,}); "
              f"single-string 6 h at 1 s ({record(one, 'single-string', 6, 1):,})")

        print("\nthroughput at max (readings/s)")
        peaks = {}
        for name, path in (("thailand-full, 1,944 a frame", full), ("single-string, 24 a frame", one)):
            scanned, scan_s = duckdb_scan(path)
            readings, wall_s, frames = replay_in_process(path)
            lines, pipe_s, peaks[path] = replay_cli_pipe(path)
            assert readings == scanned and lines == frames
            base = scanned / scan_s
            print(f"  {name}")
            print(f"    DuckDB scan to Arrow (baseline)     {base:>12,.0f}")
            print(f"    replay, frames to a consumer        {readings / wall_s:>12,.0f}   "
                  f"{readings / wall_s / base:.2f}x baseline")
            print(f"    battsim replay --speed max | pipe   {readings / pipe_s:>12,.0f}   "
                  f"{readings / pipe_s / base:.2f}x baseline"
                  f"   ({lines:,} lines, peak {peaks[path]:.0f} MB)")
            figures["throughput"][name] = {"duckdb_scan_per_s": round(base), "consumer_per_s": round(readings / wall_s),
                                           "pipe_per_s": round(readings / pipe_s), "peak_mb": round(peaks[path])}
        lines, pipe_s, peak_mb = replay_cli_pipe(longer)
        print(f"  memory: battsim replay --speed max peaks at {peaks[full]:.0f} MB for {args.days:g} d of the full fleet, "
              f"{peak_mb:.0f} MB for {args.memory_days:g} d ({lines * 1944 / pipe_s:,.0f} readings/s)")
        figures["memory"] = {"days": args.days, "peak_mb": round(peaks[full]), "longer_days": args.memory_days,
                             "longer_peak_mb": round(peak_mb)}

        print("\npacing error: frame handed over minus due (ms)")
        print(f"  {'run':40s} {'frames':>7s} {'p50':>7s} {'p99':>7s} {'max':>7s}")
        runs = [("single-string 1 s ticks at 1x", one, 1.0, args.pacing_seconds[0]),
                ("single-string 1 s ticks at 60x", one, 60.0, args.pacing_seconds[1]),
                ("single-string 1 s ticks at 3600x", one, 3600.0, args.pacing_seconds[2]),
                ("thailand-full 60 s ticks at 3600x", full, 3600.0, args.pacing_seconds[2])]
        for name, path, speed, seconds in runs:
            late, preroll_s = pacing(path, speed, seconds)
            late_ms = late * 1e3
            p50, p99 = np.percentile(late_ms, [50, 99])
            print(f"  {name:40s} {len(late_ms):>7,d} {p50:>7.2f} {p99:>7.2f} {late_ms.max():>7.2f}"
                  f"   preroll {preroll_s * 1e3:.0f} ms" + ("" if abs(p99) < 10 else "   (p99 over 10 ms)"))
            figures["pacing"][name] = {"frames": len(late_ms), "p50_ms": round(float(p50), 2),
                                       "p99_ms": round(float(p99), 2), "max_ms": round(float(late_ms.max()), 2)}
        print(f"\nload average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    measurement.save(figures)


if __name__ == "__main__":
    main()
