"""A batch run: simulate a fleet over a span of virtual time as fast as possible, recording it.

This is what ``battsim run`` does, without the command line: the CLI parses flags into a
:class:`BatchRun` and shows :func:`record_run`'s progress.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from battsim.engine.alarms import AlarmingSink
from battsim.engine.fleet import FleetSpec, build_fleet
from battsim.engine.world import DEFAULT_BATCH_ROWS, DEFAULT_START, World
from battsim.recordings.format import NotARecordingError, RecordingBusyError, verify_recording
from battsim.recordings.outputs import discard, replace_file, staging_path, wal_path
from battsim.recordings.recorder import Recorder, RecordingExistsError, RunInfo
from battsim.recordings.run_config import RunConfig, ShardPlace, TimelineText
from battsim.recordings.schema import MAX_RECORDING_JARS
from battsim.scenarios import SCENARIO_NAMES, Scenarios, Timeline

# How much virtual time the world advances between progress reports.
PROGRESS_STEP_S = 6 * 3600


@dataclass
class BatchRun:
    fleet: FleetSpec
    out: Path
    seed: int = 0
    start: datetime = DEFAULT_START
    end: datetime = DEFAULT_START + timedelta(days=7)
    interval_s: int = 60
    preset: str | None = None
    overwrite: bool = False  # replace an existing ``out`` (only once the new recording is complete)
    batch_rows: int = DEFAULT_BATCH_ROWS
    alarms: bool = True  # evaluate the alarm rules and record alarm_raised / alarm_cleared events
    configure_world: list[Callable[[World], None]] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)  # installed in order; they merge
    shard: ShardPlace | None = None  # a part of a shard set (battsim.scale.runner): where it sits in the whole run
    # battsim.sinks configs fed every reading and event (alarms too) besides the recording; a back-fill waits for
    # a slow sink rather than dropping, so the run delivers everything (and goes at the slowest sink's pace)
    sinks: list = field(default_factory=list)

    @property
    def span_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def config(self) -> RunConfig:
        config = RunConfig(fleet=self.fleet.model_dump(mode="json"), seed=self.seed,
                           start=self.start.isoformat(), end=self.end.isoformat(), interval_s=self.interval_s,
                           preset=self.preset, alarms=self.alarms,
                           timelines=[TimelineText(source=t.source, toml=t.text) for t in self.timelines])
        if self.shard is not None:
            config.shard = self.shard
        return config


@dataclass(frozen=True)
class RunSummary:
    path: Path
    run_id: str
    readings: int
    ticks: int
    virtual_span_s: float
    wall_s: float
    sinks: tuple[dict, ...] = ()  # each sink's status at the end (sent, dropped, ...)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else float("inf")


class RecordingWriteError(RuntimeError):
    """The recording could not be written (a full disk, a file too large, an unwritable place).

    ``kept`` is where the part written so far was left (closed, readable, marked incomplete), or None
    if nothing readable was written; a previous file at ``out`` is never replaced by a failed run.
    """

    def __init__(self, out: Path, reason: str, kept: Path | None):
        where = f"; what was written is kept in {kept} (marked incomplete)" if kept else ""
        super().__init__(f"writing {out} failed: {reason}{where}")
        self.out, self.reason, self.kept = out, reason, kept


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): the recording is closed, readable and marked incomplete.

    ``summary`` is what was recorded (its ``path`` is where the recording was kept); ``stopped_s`` is the
    virtual second the simulation had reached. ``kept`` is None if nothing readable was written. It is a
    KeyboardInterrupt, so a caller that does not look for it still stops.
    """

    def __init__(self, summary: RunSummary, stopped_s: float, kept: Path | None):
        super().__init__(f"interrupted at virtual second {stopped_s:g}")
        self.summary, self.stopped_s, self.kept = summary, stopped_s, kept


def record_run(run: BatchRun, progress: Callable[[float, int], None] | None = None) -> RunSummary:
    """Simulate ``run`` into its recording; ``progress(virtual_seconds_done, readings)`` is called as it goes.

    A new recording is written at ``run.out``, so even a killed run leaves every committed batch there
    (marked running, which readers report as incomplete). One that replaces an existing file is written
    beside it and renamed over it only when complete, so a failed run never destroys the previous file.
    If the run fails or is interrupted, what was flushed is kept, marked incomplete (see
    :func:`keep_partial`). An I/O failure is raised as :class:`RecordingWriteError`.
    """
    if run.fleet.jar_count > MAX_RECORDING_JARS:
        raise ValueError(f"fleet: {run.fleet.jar_count:,} jars, and one recording holds at most {MAX_RECORDING_JARS:,}; "
                         "record it as a shard set (battsim run --workers N, or battsim.scale.runner.ShardedRun)")
    if run.out.exists() and not run.overwrite:
        raise RecordingExistsError(f"{run.out} exists; pass --overwrite to replace it")
    fleet = build_fleet(run.fleet, run.seed)
    for timeline in run.timelines:
        timeline.check(fleet)  # refuse unknown targets before a file is created
    staged = staging_path(run.out) if run.out.exists() or run.out.is_symlink() else run.out
    try:
        recorder = Recorder(staged, fleet, RunInfo(run.seed, run.start, run.end, run.interval_s, run.config(),
                                                   run.preset), scenario_names=SCENARIO_NAMES)
    except (OSError, duckdb.Error) as error:
        discard(staged)
        raise RecordingWriteError(run.out, _reason(error, staged, run.out), None) from None
    began = time.perf_counter()
    failure: BaseException | None = None
    world: World | None = None
    sinks = None
    try:
        sink = recorder
        if run.sinks:
            from battsim.sinks import FanOut  # not at the top: the sinks' encoding imports recordings

            sinks = FanOut.build(run.sinks, fleet, wait=True)
            sink = FanOut([recorder, sinks])
        sink = AlarmingSink(sink, fleet) if run.alarms else sink
        world = World(fleet, sink, seed=run.seed, start=run.start, interval_s=run.interval_s,
                      batch_rows=run.batch_rows)
        if run.timelines:
            controller = Scenarios(world)
            for timeline in run.timelines:
                timeline.install(world, controller)
        for configure in run.configure_world:
            configure(world)
        done_s = 0.0
        while done_s < run.span_s:
            done_s = min(done_s + PROGRESS_STEP_S, run.span_s)
            world.run_until(done_s)
            if progress is not None:
                progress(done_s, recorder.readings_written)
        world.flush()
    except BaseException as error:
        failure = error
    if sinks is not None:
        sinks.close()  # delivers what is queued: part of the run
    wall_s = time.perf_counter() - began
    try:
        recorder.close(status="complete" if failure is None else "incomplete", wall_seconds=wall_s)
    except BaseException as error:
        failure = failure or error
    if failure is None:
        if staged != run.out:
            replace_file(staged, run.out)
        return RunSummary(run.out, recorder.run_id, recorder.readings_written, recorder.ticks_written, run.span_s,
                          wall_s, tuple(sinks.status()) if sinks is not None else ())
    kept = keep_partial(staged, run.out)
    # DuckDB turns a SIGINT that lands inside a query into its own InterruptException.
    if isinstance(failure, (KeyboardInterrupt, duckdb.InterruptException)):
        stopped_s = world.env.now if world is not None else 0.0
        raise RunInterrupted(RunSummary(kept or run.out, recorder.run_id, recorder.readings_written,
                                        recorder.ticks_written, stopped_s, wall_s), stopped_s, kept) from None
    if isinstance(failure, (OSError, duckdb.Error)):
        raise RecordingWriteError(run.out, _reason(failure, staged, run.out), kept) from None
    raise failure


def keep_partial(staged: Path, out: Path) -> Path | None:
    """Keep a failed run's recording if it can be read: where it was written if that is ``out``, else at
    ``NAME.incomplete.duckdb`` beside ``out`` (never over an existing file). An unreadable or empty one is
    removed, so a failure leaves no 0-byte or broken files. Returns where it was kept."""
    _mark_incomplete(staged)
    try:
        verify_recording(staged)
    except (NotARecordingError, RecordingBusyError, OSError, duckdb.Error):
        discard(staged)
        return None
    if staged == out:
        return out
    target, n = out, 1
    while target.exists() or target.is_symlink():
        n += 1
        target = out.with_name(f"{out.stem}.incomplete{'' if n == 2 else f'-{n - 1}'}{out.suffix}")
    replace_file(staged, target)
    if wal_path(staged).exists():  # the log could not be folded in: it is part of the recording
        os.replace(wal_path(staged), wal_path(target))
    return target


def _mark_incomplete(path: Path) -> None:
    """Fold the write-ahead log into the file and mark the run incomplete, if the disk still allows it; if
    not, the file says 'running', which every reader reports as incomplete (no writer holds it)."""
    try:
        connection = duckdb.connect(str(path))
    except duckdb.Error:
        return
    try:
        connection.execute("UPDATE runs SET status = 'incomplete' WHERE status = 'running'")
        connection.execute("CHECKPOINT")
    except duckdb.Error:
        pass
    finally:
        try:
            connection.close()
        except duckdb.Error:
            pass


# What the operating system says when a write finds no room (strerror, as DuckDB repeats it in its own
# errors): the disk full, a file past the file system's or the process's (RLIMIT_FSIZE) largest size, a quota.
_NO_ROOM = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EFBIG: "the file is too large (the file system or a file-size limit allows no more)",
    errno.EDQUOT: "the disk quota is exceeded",
}


def write_failure(error: BaseException) -> str:
    """Why a write failed, plainly: a full disk or a file too large is said as such, not in DuckDB's words
    ("TransactionContext Error: Failed to commit: ... File too large"); anything else by its first line."""
    code = error.errno if isinstance(error, OSError) else None
    for number, plainly in _NO_ROOM.items():
        if code == number or os.strerror(number) in str(error):
            return plainly
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _reason(error: BaseException, staged: Path, out: Path) -> str:
    """The cause in the user's terms: the message names ``out``, not the temporary name it was written to."""
    return write_failure(error).replace(str(staged.resolve()), str(out)).replace(str(staged), str(out))
