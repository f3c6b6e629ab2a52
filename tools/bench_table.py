"""The README's performance table, generated from ``bench/results.json`` (what ``make bench`` wrote).

    .venv/bin/python tools/bench_table.py           # rewrite the table between the markers in README.md
    .venv/bin/python tools/bench_table.py --check   # exit 1 if README.md's table is not the generated one

The table sits between ``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->``; nothing else in the
README is touched. Every figure comes from the results file, with the load average and library versions
each benchmark ran with, so the README cannot claim what its benchmarks no longer print.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
WHAT = {
    "bench_batch": "`thailand-full` at 60 s into a fresh file, against DuckDB's own ingest of the same rows from "
                   "in-memory Arrow; peak memory",
    "bench_live": "the full fleet at a 1 s interval live, 0 / 1 / N WebSocket subscribers",
    "bench_replay": "replay at `max` against DuckDB's own scan; pacing error at 1×, 60×, 3600×",
    "bench_report": "`battsim report` against DuckDB summing the same columns",
    "bench_dashboard": "the page in headless chromium with the full fleet at 1 s",
    "bench_sinks": "each sink against the server's own ingest of the same rows (webhook: POSTing the same bodies; "
                   "MQTT: paho publishing the same payloads; PostgreSQL: a plain COPY of the same text); cost on the "
                   "simulation's thread",
    "bench_modbus": "N Modbus clients polling the whole full fleet every second against `battsim serve "
                    "--modbus-port`; server CPU against no clients",
    "bench_scale": "`battsim run --workers 1` and `2` on 24 to 100 k jars (and 1 M with `--million`) against DuckDB's "
                   "ingest of the same rows; peak memory per worker",
}
# The make target that measures each benchmark, named in the row of one not yet in the results file.
TARGET = {"bench_report": "make bench-report", "bench_scale": "make bench-scale"}


def _m(rate: float) -> str:
    return f"{rate / 1e6:.2f} M"


def batch(f: dict) -> str:
    text = (f"{_m(f['readings_per_s'])} readings/s end to end ({f['readings']:,} readings, {f['days']:g} days); "
            f"DuckDB alone {_m(f['duckdb_ingest_rows_per_s'])} rows/s, ratio {f['ratio']:.2f}; "
            f"peak {f['peak_mb']} MB")
    if memory := f.get("memory_run"):
        text += (f"; {memory['days']:g} days ({memory['readings']:,} readings): peak {memory['peak_mb']} MB, "
                 f"{_m(memory['readings_per_s'])} readings/s")
    return text


def live(f: dict) -> str:
    base, one, many = f["phases"]
    return (f"server {base['server_cpu']:.1%} of one core with no subscriber; tick-to-receive p50 "
            f"{one['p50_ms']:.0f} ms / p99 {one['p99_ms']:.0f} ms with 1 subscriber, p50 {many['p50_ms']:.0f} ms / "
            f"p99 {many['p99_ms']:.0f} ms with {many['subscribers']}; frames lost: {one['lost'] + many['lost']}")


def replay(f: dict) -> str:
    parts = [f"{name}: {_m(t['consumer_per_s'])}/s to a consumer, {_m(t['pipe_per_s'])}/s through `battsim replay` "
             f"into a pipe (DuckDB scan {_m(t['duckdb_scan_per_s'])}/s)" for name, t in f["throughput"].items()]
    pacing = f["pacing"].values()
    parts.append(f"pacing p99 ≤ {max(p['p99_ms'] for p in pacing):.1f} ms, max {max(p['max_ms'] for p in pacing):.1f} ms")
    memory = f["memory"]
    parts.append(f"memory {memory['peak_mb']} MB ({memory['days']:g} d) / {memory['longer_peak_mb']} MB "
                 f"({memory['longer_days']:g} d)")
    return "; ".join(parts)


def report(f: dict) -> str:
    slowest, seconds = max(f["views_s"].items(), key=lambda item: item[1])
    return (f"{f['readings']:,} readings ({f['days']:g} days): {f['report_wall_s']:.1f} s wall, "
            f"{f['report_cpu_s']:.1f} s CPU, {f['ratio']:.1f}× the baseline scan ({f['baseline_s']:.2f} s); "
            f"slowest view {slowest} {seconds:.1f} s")


def dashboard(f: dict) -> str:
    busy = [f"{(row['parse_ms'] + row['draw_ms']) / 10:.0f} % at {row['speed']:g}×" for row in f["speeds"]]
    return "main thread busy " + ", ".join(busy)


def sinks(f: dict) -> str:
    return "; ".join(f"{row['sink']}: {row['readings_per_s'] / 1e3:.0f} k/s, {row['ratio']:.2f} of the baseline's "
                     f"{row['baseline_readings_per_s'] / 1e3:.0f} k/s, {row['simulation_thread_us_per_reading']:.3f} µs "
                     "a reading on the simulation's thread" for row in f["rows"])


def modbus(f: dict) -> str:
    return (f"{f['clients']} clients × {f['seconds']:g} s: {f['requests_per_s']:,} requests/s, {f['errors']} errors, "
            f"{f['polls']} of {f['polls_due']} full-fleet polls done (p50 {f['poll_p50_s']:.1f} s); "
            f"{f['cpu_us_per_request']:.0f} µs server CPU a request; simulation at {f['ticks_per_wall_s']:.3f} ticks/s")


def scale(f: dict) -> str:
    parts = []
    for size in f["sizes"].values():
        runs = ", ".join(f"{run['workers']} worker{'s' if run['workers'] > 1 else ''} "
                         f"{run['readings_per_s'] / 1e3:.0f} k/s ({run['worker_peak_mb']} MB)" for run in size["runs"])
        speedup = f", speed-up {size['speedup_2_over_1']:.2f}" if "speedup_2_over_1" in size else ""
        parts.append(f"{size['jars']:,} jars: {runs}{speedup}")
    if million := f.get("million"):
        parts.append(f"{million['jars']:,} jars (300 s, one virtual day, {million['parts']} parts): 2 workers "
                     f"{million['readings_per_s'] / 1e3:.0f} k/s, {million['readings']:,} readings in "
                     f"{million['wall_s'] / 60:.1f} min ({million['worker_peak_mb']} MB)")
    return "; ".join(parts) + f"; DuckDB alone {_m(f['duckdb_ingest_rows_per_s'])} rows/s"


FIGURES = {"bench_batch": batch, "bench_live": live, "bench_replay": replay, "bench_report": report,
           "bench_dashboard": dashboard, "bench_sinks": sinks, "bench_modbus": modbus, "bench_scale": scale}


def table(results: dict) -> str:
    rows = ["| benchmark | what it measures | figures | measured |", "|---|---|---|---|"]
    for name, describe in FIGURES.items():
        if name not in results:
            # Shown, not dropped: a table that silently loses a row reads as if every benchmark were there.
            target = TARGET.get(name, "make bench")
            rows.append(f"| `bench/{name}.py` | {WHAT[name]} | not measured yet: `{target}` records it | |")
            continue
        entry = results[name]
        machine = entry["machine"]
        load = f"{machine['load_average_before'][0]:.1f}→{machine['load_average_after'][0]:.1f}"
        rows.append(f"| `{entry['command']}` | {WHAT[name]} | {describe(entry['figures'])} | "
                    f"{entry['measured_at'][:16].replace('T', ' ')} UTC, {machine['cpu_count']} cores, load {load} |")
    versions = next(iter(results.values()))["versions"]
    shown = ", ".join(f"{name} {v}" for name, v in versions.items() if v)
    return "\n".join(rows) + f"\n\nLibraries: {shown} (per benchmark in `bench/results.json`)."


def rewrite(readme: str, generated: str) -> str:
    if readme.count(START) != 1 or readme.count(END) != 1:
        raise SystemExit(f"error: README.md needs one {START} and one {END}")
    head, rest = readme.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{generated}\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's table is stale")
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    updated = rewrite(readme, table(json.loads(RESULTS.read_text())))
    if args.check:
        if updated != readme:
            print("README.md's performance table is not the one bench/results.json gives: run tools/bench_table.py",
                  file=sys.stderr)
            raise SystemExit(1)
        return
    README.write_text(updated, encoding="utf-8")
    print(f"README.md: performance table from {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
