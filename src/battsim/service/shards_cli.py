"""``battsim run --workers N`` (and ``--engine ray``): the run as a shard set, its progress and summary."""

from __future__ import annotations

import importlib.util
from datetime import datetime

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from battsim.recordings.batch import BatchRun
from battsim.scale.manifest import MANIFEST_NAME, is_shard_set
from battsim.scale.plan import MAX_PART_JARS
from battsim.scale.runner import ShardedRun, ShardsIncomplete, ShardsInterrupted, ShardsSummary, record_shards
from battsim.service.terminal import console, fail, print_summary

ENGINES = ("processes", "ray")
MAX_WORKERS = 256


def check_shard_options(workers: int | None, part_jars: int, engine: str, address: str | None) -> None:
    if engine not in ENGINES:
        fail("--engine", f"{engine!r} is not one of {', '.join(ENGINES)}")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        fail("--workers", f"{workers} is not a whole number from 1 to {MAX_WORKERS}")
    if not 1 <= part_jars <= MAX_PART_JARS:
        fail("--part-jars", f"{part_jars} is outside 1-{MAX_PART_JARS:,} (a part is one recording file)")
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        fail("--engine", "ray needs Ray installed: pip install 'battsim[ray]' (or use --workers N)")
    if address is not None and engine != "ray":
        fail("--address", "is for --engine ray (the Ray cluster to run on)")


def run_sharded(batch: BatchRun, workers: int | None, part_jars: int, engine: str, address: str | None,
                progress: bool) -> None:
    out = batch.out
    if out.exists() and not out.is_dir():
        fail("--out", f"{escape(str(out))} is a file; --workers writes a directory (its parts and {MANIFEST_NAME})")
    if out.is_dir() and any(out.iterdir()):
        if not is_shard_set(out):
            fail("--out", f"{escape(str(out))} is a directory that is not a shard set (no {MANIFEST_NAME}); "
                 "give a new or empty one")
        if not batch.overwrite:
            fail("--out", f"{escape(str(out))} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        fail("--out", f"directory {escape(str(out.parent))} does not exist")
    run = ShardedRun(batch, workers=workers or 2, max_part_jars=part_jars, engine=engine, address=address)
    parts = run.parts()
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), console=console, disable=not progress) as bar:
        task = bar.add_task(f"{len(parts)} parts", total=1.0, rate="")
        began = datetime.now()

        def show(share: float, readings: int) -> None:
            elapsed = (datetime.now() - began).total_seconds() or 1e-9
            bar.update(task, completed=share, rate=f"{readings / elapsed:,.0f} readings/s")

        code = 0
        try:
            summary = record_shards(run, progress=show)
        except ShardsInterrupted as stopped:
            summary, code = stopped.summary, 130  # 128 + SIGINT, as a shell reports Ctrl-C
        except ShardsIncomplete as failed:
            summary, code = failed.summary, 1
        except RuntimeError as error:  # Ray missing or its cluster unreachable
            fail("--engine", escape(str(error)))
    _print(summary, batch, run, code)
    if code:
        raise typer.Exit(code=code)


def _print(summary: ShardsSummary, batch: BatchRun, run: ShardedRun, code: int) -> None:
    where = summary.kept or summary.path
    rows = [
        ("shard set", str(where)),
        ("run id", summary.run_id),
        ("parts", f"{len(summary.parts)} ({run.engine}, {run.workers} workers, at most {run.max_part_jars:,} jars a part)"),
        ("readings", f"{summary.readings:,}"),
        ("virtual span", f"{batch.start.isoformat()} → {batch.end.isoformat()} ({summary.virtual_span_s / 86400:g} days)"),
        ("wall time", f"{summary.wall_s:.2f} s"),
        ("rate", f"{summary.readings_per_s:,.0f} readings/s"),
    ]
    for part in summary.incomplete:
        rows.append((part["file"], f"{part['status']}" + (f": {part['error']}" if part.get("error") else "")))
    if not code:
        rows.append(("try", f"battsim query {where} \"SELECT site_id, count(*) FROM readings GROUP BY ALL\""))
    print_summary(rows)
    if code:
        console.print(f"{len(summary.incomplete)} of {len(summary.parts)} parts did not complete; the manifest "
                      f"{where / MANIFEST_NAME} says which", soft_wrap=True, highlight=False, markup=False)

