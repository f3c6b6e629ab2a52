"""A sharded batch run: the fleet's parts (:mod:`battsim.scale.plan`) simulated by N worker processes.

    summary = record_shards(ShardedRun(BatchRun(fleet=spec, out=Path("fleet"), seed=1), workers=2))

Each part is an ordinary :func:`battsim.recordings.batch.record_run` into ``DIR/part-NNN.duckdb``, with the
run's timelines narrowed to the part's sites, so each part has every property of a single recording
(committed batch by batch, marked incomplete when cut short, memory flat). The parent only plans, starts
the workers, follows their progress and keeps the manifest (:mod:`battsim.scale.manifest`) up to date.
A worker that dies leaves its finished parts complete and the one it was writing marked incomplete; the
other workers go on. Ctrl-C stops every worker at its next batch, each part it was writing marked
incomplete, and raises :class:`ShardsInterrupted` once the manifest says so.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import resource
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from battsim.engine.fleet import fleet_layout
from battsim.recordings.batch import BatchRun, RunInterrupted, keep_partial, record_run
from battsim.recordings.outputs import replace_directory, staging_path
from battsim.recordings.run_config import ShardPlace
from battsim.scale.manifest import CONFIG_NAME, MANIFEST_FORMAT, MANIFEST_VERSION, is_shard_set, write_config, write_manifest
from battsim.scale.plan import DEFAULT_PART_JARS, Part, assign, part_spec, plan_parts, restrict_timeline
from battsim.scenarios.timeline import parse_timeline

# How long the parent waits for workers to finish their part after Ctrl-C before it stops them harder.
STOP_GRACE_S = 60.0
INTERRUPTED = "interrupted"  # a part's error when Ctrl-C cut it


@dataclass
class ShardedRun:
    """``batch`` is the whole run (its ``out`` the set's directory); ``workers`` processes share its parts."""

    batch: BatchRun
    workers: int = 2
    max_part_jars: int = DEFAULT_PART_JARS
    engine: str = "processes"  # or "ray"
    address: str | None = None  # the Ray cluster (None: a local one started for the run)

    @property
    def out(self) -> Path:
        return self.batch.out

    def parts(self) -> list[Part]:
        return plan_parts(self.batch.fleet, self.max_part_jars)


@dataclass(frozen=True)
class PartJob:
    """What one part needs, picklable for a worker process or a Ray task."""

    part: Part
    parts: int
    batch: BatchRun  # fleet: the part's sites only; out: the part's file
    timelines: tuple[tuple[str, str], ...]  # (source, TOML text) of each timeline, narrowed in the worker
    max_part_jars: int

    def run(self, progress: Callable[[float, int], None] | None = None):
        layout = fleet_layout(self.batch.fleet)
        timelines = [restrict_timeline(parse_timeline(text, source), layout) for source, text in self.timelines]
        part = self.part
        shard = ShardPlace(part=part.index, parts=self.parts, max_part_jars=self.max_part_jars,
                           sites=(part.site_start, part.site_stop))
        batch = replace(self.batch, timelines=timelines, shard=shard)
        return record_run(batch, progress=progress)


@dataclass
class ShardsSummary:
    path: Path
    run_id: str
    readings: int
    parts: list[dict]
    virtual_span_s: float
    wall_s: float
    kept: Path | None = None  # where an incomplete set was left, if not at ``path``

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def incomplete(self) -> list[dict]:
        return [part for part in self.parts if part["status"] != "complete"]


class ShardsIncomplete(RuntimeError):
    """Some parts did not complete (a worker died or failed); ``summary.parts`` says which and why."""

    def __init__(self, summary: ShardsSummary):
        names = ", ".join(f"{p['file']} ({p['status']}{': ' + p['error'] if p.get('error') else ''})"
                          for p in summary.incomplete)
        super().__init__(f"{len(summary.incomplete)} of {len(summary.parts)} parts did not complete: {names}")
        self.summary = summary


class ShardsInterrupted(KeyboardInterrupt):
    """Ctrl-C: every worker stopped, the parts it was writing marked incomplete, the manifest up to date."""

    def __init__(self, summary: ShardsSummary):
        super().__init__(f"interrupted; {len(summary.incomplete)} of {len(summary.parts)} parts incomplete")
        self.summary = summary


def jobs_for(run: ShardedRun, directory: Path) -> list[PartJob]:
    parts = run.parts()
    timelines = tuple((t.source, t.text) for t in run.batch.timelines)
    return [PartJob(part, len(parts), replace(run.batch, fleet=part_spec(run.batch.fleet, part), out=directory / part.file,
                                              overwrite=False, timelines=[]), timelines, run.max_part_jars)
            for part in parts]


def initial_manifest(run: ShardedRun, run_id: str) -> dict:
    spec = run.batch.fleet
    parts = run.parts()
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "run_id": run_id, "status": "running",
        "engine": run.engine, "workers": run.workers, "max_part_jars": run.max_part_jars,
        "seed": run.batch.seed, "preset": run.batch.preset, "start": run.batch.start.isoformat(),
        "end": run.batch.end.isoformat(), "interval_s": run.batch.interval_s,
        "created_at": datetime.now(UTC).isoformat(), "wall_seconds": 0.0, "config_file": CONFIG_NAME,
        "parts": [{"file": p.file, "sites": [p.site_start, p.site_stop], "first_site": spec.sites[p.site_start].site_id,
                   "last_site": spec.sites[p.site_stop - 1].site_id, "jars": p.jars, "status": "pending",
                   "readings": 0, "error": None} for p in parts],
    }


def part_status(path: Path) -> tuple[str, int]:
    """What a part's file says: complete, incomplete (cut short, or still 'running' with no writer) or
    missing, and the readings it holds."""
    if not path.is_file():
        return "missing", 0
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return "incomplete", 0
    try:
        status, readings = connection.execute("SELECT status, readings FROM runs").fetchall()[0]
    except (duckdb.Error, IndexError):
        return "incomplete", 0
    finally:
        connection.close()
    return ("complete" if status == "complete" else "incomplete"), int(readings)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB (what shows memory stays flat per worker): Linux's
    VmHWM, not ru_maxrss, which in a spawned child still counts the parent's peak from before the exec."""
    try:
        with open("/proc/self/status") as status:
            return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024.0
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # in KiB where there is no /proc


def _work(jobs: list[PartJob], messages) -> None:
    """A worker process: its parts one after another, reporting each start, progress and end."""
    for job in jobs:
        index = job.part.index
        messages.put(("running", index, 0))
        try:
            summary = job.run(lambda done_s, readings, index=index: messages.put(("progress", index, readings)))
        except RunInterrupted as stopped:
            messages.put(("incomplete", index, stopped.summary.readings, INTERRUPTED))
            return
        except KeyboardInterrupt:  # between batches' guarded sections: the part is cut all the same
            messages.put(("incomplete", index, 0, INTERRUPTED))
            return
        except Exception as error:  # reported to the parent, which names the part
            messages.put(("incomplete", index, 0, str(error).splitlines()[0] if str(error) else type(error).__name__))
            return
        messages.put(("complete", index, summary.readings, None, peak_rss_mb()))


def record_shards(run: ShardedRun, progress: Callable[[float, int], None] | None = None) -> ShardsSummary:
    """Simulate ``run`` as parts into ``run.out`` (a directory); ``progress(share_done, readings)`` as it goes.

    An existing set at ``run.out`` is replaced only with ``batch.overwrite`` and only once the new one is
    complete; until then the new set is written beside it. Raises :class:`ShardsIncomplete` or
    :class:`ShardsInterrupted` (each with the summary) when a part did not complete.
    """
    out = run.out
    replacing = out.exists() and any(out.iterdir())
    if replacing and not (run.batch.overwrite and is_shard_set(out)):
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace a shard set")
    if run.engine == "ray" and run.address is not None:
        from battsim.scale.ray_runner import check_address

        check_address(run.address)
    directory = staging_path(out) if replacing else out
    directory.mkdir(parents=True, exist_ok=True)
    layout = fleet_layout(run.batch.fleet)
    for timeline in run.batch.timelines:
        timeline.check(layout)
    run_id = uuid.uuid4().hex[:12]
    manifest = initial_manifest(run, run_id)
    write_config(directory, run.batch.config().as_json())
    write_manifest(directory, manifest)
    jobs = jobs_for(run, directory)
    began = time.perf_counter()
    interrupted, failure = False, None
    try:
        if run.engine == "ray":
            from battsim.scale.ray_runner import run_on_ray

            run_on_ray(jobs, run, lambda *message: _note(manifest, directory, message, progress))
        else:
            _run_processes(jobs, run.workers, manifest, directory, progress)
    except KeyboardInterrupt:
        interrupted = True
    except RuntimeError as error:  # the engine could not start (Ray's cluster unreachable): said, with the manifest
        failure = error
    wall_s = time.perf_counter() - began
    # A worker stopped by Ctrl-C means the run was interrupted, even if this process did not see the signal itself.
    interrupted = interrupted or any(part["error"] == INTERRUPTED for part in manifest["parts"])
    for part in manifest["parts"]:
        path = directory / part["file"]
        status, part["readings"] = part_status(path)
        if status == "incomplete":
            keep_partial(path, path)  # mark it incomplete in the file, or remove it if nothing in it is readable
            status, part["readings"] = part_status(path)
        part["status"] = status
        if status == "missing" and part["error"] is None:
            part["error"] = "not started"
    complete = all(part["status"] == "complete" for part in manifest["parts"])
    manifest.update(status="complete" if complete else "incomplete", wall_seconds=wall_s)
    write_manifest(directory, manifest)
    readings = sum(part["readings"] for part in manifest["parts"])
    summary = ShardsSummary(out, run_id, readings, manifest["parts"], run.batch.span_s, wall_s)
    if complete:
        if directory != out:
            replace_directory(directory, out)
        return summary
    if directory != out:
        summary.kept = _keep_beside(directory, out)
    if failure is not None:
        raise failure
    if interrupted:
        raise ShardsInterrupted(summary)
    raise ShardsIncomplete(summary)


def _keep_beside(staged: Path, out: Path) -> Path:
    target, n = out.with_name(f"{out.name}.incomplete"), 1
    while target.exists():
        n += 1
        target = out.with_name(f"{out.name}.incomplete-{n}")
    staged.rename(target)
    return target


def _note(manifest: dict, directory: Path, message: tuple, progress) -> None:
    """Fold one worker message into the manifest (written when a part starts or ends) and the progress."""
    kind, index, readings, *rest = message
    part = manifest["parts"][index]
    part["readings"] = readings
    if kind != "progress":
        part["status"] = kind
        if rest and rest[0]:
            part["error"] = rest[0]
        if len(rest) > 1:
            part["worker_peak_rss_mb"] = round(rest[1], 1)
        write_manifest(directory, manifest)
    if progress is not None:
        jars = sum(p["jars"] for p in manifest["parts"])
        done = sum(p["jars"] for p in manifest["parts"] if p["status"] in ("complete", "incomplete"))
        progress(done / jars, sum(p["readings"] for p in manifest["parts"]))


def _run_processes(jobs: list[PartJob], workers: int, manifest: dict, directory: Path, progress) -> None:
    context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited DuckDB or threads
    messages = context.Queue()
    shares = assign([job.part for job in jobs], workers)
    processes = [context.Process(target=_work, args=([jobs[p.index] for p in share], messages),
                                 name=f"battsim-shard-{n}", daemon=True) for n, share in enumerate(shares)]
    for process in processes:
        process.start()
    stopping_since = None
    while True:
        try:
            try:
                _note(manifest, directory, messages.get(timeout=0.2), progress)
                continue
            except queue.Empty:
                pass
            if not any(process.is_alive() for process in processes):
                break
            if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_S:
                for process in processes:
                    process.terminate()
        except KeyboardInterrupt:
            if stopping_since is None:
                stopping_since = time.monotonic()
                # A terminal's Ctrl-C reaches every worker already; a SIGINT sent to this process alone does not.
                for process in processes:
                    process.join(0.5)
                    if process.is_alive():
                        try:
                            os.kill(process.pid, signal.SIGINT)
                        except OSError:
                            pass  # it exited meanwhile
    for process in processes:
        process.join()
    if stopping_since is not None:
        raise KeyboardInterrupt

