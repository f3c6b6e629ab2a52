"""A batch run: simulate a fleet over a span of virtual time as fast as possible, recording it.

This is what ``battsim run`` does, without the command line: the CLI parses flags into a
:class:`BatchRun` and shows :func:`record_run`'s progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from battsim.engine.alarms import AlarmingSink
from battsim.engine.fleet import FleetSpec, build_fleet
from battsim.engine.world import DEFAULT_BATCH_ROWS, DEFAULT_START, World
from battsim.recordings.recorder import Recorder, RunInfo
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
    overwrite: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS
    alarms: bool = True  # evaluate the alarm rules and record alarm_raised / alarm_cleared events
    configure_world: list[Callable[[World], None]] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)  # installed in order; they merge
    config_extra: dict = field(default_factory=dict)

    @property
    def span_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def config(self) -> dict:
        return {
            "fleet": self.fleet.model_dump(mode="json"),
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "interval_s": self.interval_s,
            "preset": self.preset,
            "timelines": [{"source": t.source, "toml": t.text} for t in self.timelines],
            "alarms": self.alarms,
            **self.config_extra,
        }


@dataclass(frozen=True)
class RunSummary:
    path: Path
    run_id: str
    readings: int
    ticks: int
    virtual_span_s: float
    wall_s: float

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.wall_s if self.wall_s > 0 else float("inf")


def record_run(run: BatchRun, progress: Callable[[float, int], None] | None = None) -> RunSummary:
    """Simulate ``run`` into its recording; ``progress(virtual_seconds_done, readings)`` is called as it goes.

    If the simulation fails, what was flushed stays in the file and the run is marked incomplete.
    """
    fleet = build_fleet(run.fleet, run.seed)
    for timeline in run.timelines:
        timeline.check(fleet)  # refuse unknown targets before a file is created
    recorder = Recorder(run.out, fleet, RunInfo(run.seed, run.start, run.end, run.interval_s, run.config(),
                                                run.preset), overwrite=run.overwrite,
                        scenario_names=SCENARIO_NAMES)
    sink = AlarmingSink(recorder, fleet) if run.alarms else recorder
    world = World(fleet, sink, seed=run.seed, start=run.start, interval_s=run.interval_s,
                  batch_rows=run.batch_rows)
    if run.timelines:
        controller = Scenarios(world)
        for timeline in run.timelines:
            timeline.install(world, controller)
    for configure in run.configure_world:
        configure(world)
    began = time.perf_counter()
    try:
        done_s = 0.0
        while done_s < run.span_s:
            done_s = min(done_s + PROGRESS_STEP_S, run.span_s)
            world.run_until(done_s)
            if progress is not None:
                progress(done_s, recorder.readings_written)
        world.flush()
    except BaseException:
        recorder.close(status="incomplete", wall_seconds=time.perf_counter() - began)
        raise
    wall_s = time.perf_counter() - began
    recorder.close(status="complete", wall_seconds=wall_s)
    return RunSummary(run.out, recorder.run_id, recorder.readings_written, recorder.ticks_written, run.span_s,
                      time.perf_counter() - began)
