"""Live mode: a world paced against the wall clock inside the server's event loop.

A :class:`LiveSession` owns one world on a plain ``simpy.Environment`` and an async pacer that
steps its events up to where the :class:`~battsim.engine.clock.PacedClock` says virtual time should
be, in bounded slices, then awaits a short sleep until the next event is due
(engineering-notes.md, "SimPy"). It never blocks the event loop, so REST calls and WebSocket
senders run between slices, and scenario requests act on the world between two of its events.

The session is the world's sink: every tick's measured readings are checked by the alarm rules,
encoded once into a telemetry frame for the subscribers, and recorded; what is recorded is exactly
what was broadcast. Alarm changes become events in the recording and ``alert`` frames.

With a back-fill (``battsim serve --backfill 30d``), virtual time starts that long before now and the
pacer first runs those days as fast as it can (in slices, so the server stays responsive) into the
same recording, with progress in the status; then it paces at the requested speed from now. The
world is the same one a batch run builds, so the readings equal ``battsim run``'s for the same span
and seed. Telemetry and alert frames are not sent for back-filled ticks (a month of frames is no use
to a dashboard: it loads history from the recording); their alarms are evaluated and recorded.

:class:`Sessions` is the registry of simulation slots. The original API addresses the ``default``
slot; a slot keeps its subscribers across stop and start, so a dashboard stays connected.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple, Protocol

import duckdb
import numpy as np

from battsim.engine.alarms import AlarmChange, AlarmMonitor
from battsim.engine.clock import PacedClock
from battsim.engine.fleet import FleetSpec, build_fleet
from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event, World
from battsim.recordings.batch import write_failure
from battsim.recordings.recorder import Recorder, RunInfo
from battsim.recordings.run_config import RunConfig, TimelineText
from battsim.scenarios import (
    CATALOGUE,
    SCENARIO_NAMES,
    ScenarioError,
    Scenarios,
    Timeline,
    TimelineError,
    load_timeline,
    shipped_timelines,
)
from battsim.service.broadcast import AlertFrame, Broadcaster, MessageFrame, TelemetryEncoder
from battsim.timeparse import parse_duration
from battsim.wire import iso_utc

log = logging.getLogger(__name__)

# The pacer works in slices of at most this much wall time, then lets the event loop run.
SLICE_S = 0.02
# It never sleeps longer than this, so a stop or a change is noticed promptly even if nothing wakes it.
MAX_SLEEP_S = 0.5
# Readings are handed to the recorder in batches of at least this many rows, or at least this often.
RECORD_ROWS = 50_000
RECORD_EVERY_S = 1.0
DEFAULT_SLOT = "default"
# Several simulations side by side (README "Several simulations side by side"): named sessions besides the
# default one, and the jars all running sessions may pace together. Every session paces on the server's one
# event loop and records on its own writer thread, so the jars, not the sessions, are what the machine feels.
# One serve on this 2-core machine paced 48,000 jars at a 1 s interval with recording (0.999 ticks per wall
# second over 30 s; 2,000 sites of 2 x 12 jars), hence the jar limit just above that.
MAX_NAMED_SESSIONS = 8
MAX_LIVE_JARS = 50_000
# A back-fill runs in slices of this much wall time (longer than a paced slice: nothing is due meanwhile).
BACKFILL_SLICE_S = 0.1
# Back-fill progress goes out in a status frame at most this often.
BACKFILL_REPORT_EVERY_S = 0.5
# The longest back-fill: a year of history. Longer is a batch run's job (battsim run), which also
# leaves the server free.
MAX_BACKFILL_S = 366 * 86_400.0


def parse_backfill(value: str | float | None) -> float:
    """Seconds of history to back-fill from "30d", "12h", "PT2H" or a number of seconds (0: none).

    ValueError, naming what is allowed, outside 0-366 days.
    """
    if value is None or value == 0 or (isinstance(value, str) and value.strip() in ("", "0")):
        return 0.0
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise ValueError(f"{error}; give a duration such as 30d, 12h or 90min, up to 366d") from None
    if seconds > MAX_BACKFILL_S:
        raise ValueError(f"{seconds / 86_400:g} days is more than 366 days (for longer, use battsim run)")
    return seconds


def resolve_timeline(text_or_name: str) -> Timeline:
    """A timeline from a shipped timeline's name or from TOML text (TimelineError if neither).

    Text from a request is never read as a file path: only shipped timelines are files.
    """
    shipped = shipped_timelines()
    name = text_or_name.strip()
    if name in shipped:
        return load_timeline(shipped[name], source=name)
    if "\n" not in name and "=" not in name:
        raise TimelineError(f"timeline: {name!r} is neither a shipped timeline ({', '.join(shipped)}) "
                            "nor TOML text")
    return load_timeline(text_or_name, source="timeline")


@dataclass
class LiveConfig:
    """What a live simulation is started with (already validated at the edge)."""

    fleet: FleetSpec
    interval_s: int = 5
    seed: int = 0
    speed: float = 1.0
    start: datetime | None = None  # default: now, on a whole interval
    preset: str | None = None
    scenario: str | None = None  # applied to the whole fleet at start, as the original's start scenario
    timeline: str | None = None  # TOML text or a shipped timeline name
    timelines: list[Timeline] = field(default_factory=list)  # already loaded (battsim serve --timeline); they merge
    paused: bool = False
    backfill_s: float = 0.0  # history before now, run at batch speed first (start is then now - backfill_s)

    def config(self) -> RunConfig:
        config = RunConfig(mode="live", fleet=self.fleet.model_dump(mode="json"), seed=self.seed,
                           interval_s=self.interval_s, speed=self.speed, preset=self.preset, scenario=self.scenario,
                           timeline=self.timeline, backfill_s=self.backfill_s)
        if self.timelines:
            config.timelines = [TimelineText(source=t.source, toml=t.text) for t in self.timelines]
        return config


def default_start(interval_s: int, now_s: float | None = None, backfill_s: float = 0.0) -> datetime:
    """Now (or ``backfill_s`` before it) on a whole interval, so ticks fall on round times."""
    start_s = int((time.time() if now_s is None else now_s) - backfill_s)
    return datetime.fromtimestamp(start_s - start_s % interval_s, tz=UTC)


def recording_path(data_dir: Path, name: str, moment: datetime) -> Path:
    """A new file name in ``data_dir``: nothing there by that name, not even a (dangling) symlink to elsewhere."""
    stem = f"live-{moment.strftime('%Y%m%dT%H%M%SZ')}-{re.sub(r'[^A-Za-z0-9_-]', '_', name)}"
    path, n = data_dir / f"{stem}.duckdb", 1
    while path.exists() or path.is_symlink():
        n += 1
        path = data_dir / f"{stem}-{n}.duckdb"
    return path


class InstalledTimeline(NamedTuple):
    timeline: Timeline
    at: datetime  # virtual time of the install: its relative events ("+3d") count from it


class RecordingFailed(RuntimeError):
    """The recording of a new session could not be created (a full disk, a read-only data directory)."""


def create_recorder(path: Path, fleet, info: RunInfo) -> Recorder:
    """The session's recorder; if the file cannot be created, nothing is left behind (no 0-byte file)."""
    try:
        return Recorder(path, fleet, info, scenario_names=SCENARIO_NAMES)
    except (OSError, duckdb.Error) as error:
        for leftover in (path, Path(f"{path}.wal")):
            leftover.unlink(missing_ok=True)  # ours: the name was free a moment ago
        raise RecordingFailed(f"recording: cannot create {path.name}: {write_failure(error)}") from None


class Attached(Protocol):
    """What a live session feeds besides its recording and WebSocket: a sink (MQTT, PostgreSQL, ...), a device
    (a Modbus register map). It sees every batch of readings (the back-fill's too: ``session.backfill`` says
    whether that is still running) and every event, on the simulation's thread, so it must not block; it is
    closed when the session stops."""

    def readings(self, batch: ReadingBatch) -> None: ...

    def event(self, event: Event) -> None: ...

    def close(self) -> None: ...


Attach = Callable[["LiveSession"], Attached]  # made for each session when it starts


class LiveSession:
    """One live simulation: world, pacer, alarms, recorder, and the slot's broadcaster as its audience."""

    def __init__(self, config: LiveConfig, data_dir: Path, broadcaster: Broadcaster, slot: str = DEFAULT_SLOT,
                 wall_time: Callable[[], float] = time.time, attachments: Sequence[Attach] = ()):
        self.config = config
        self.slot = slot
        self.broadcaster = broadcaster
        # The wall clock's "now" (Unix seconds): where a back-fill ends. Injectable, so a test can fix it.
        self._wall_time = wall_time
        if config.backfill_s and config.start is not None:
            raise ValueError("give a start or a back-fill, not both")
        start = config.start or default_start(config.interval_s, wall_time(), config.backfill_s)
        self.fleet = build_fleet(config.fleet, config.seed)
        # Refuse a bad timeline or scenario before anything is written.
        timelines = [*config.timelines, *([resolve_timeline(config.timeline)] if config.timeline else [])]
        for timeline in timelines:
            timeline.check(self.fleet)
        if config.scenario is not None and config.scenario not in CATALOGUE:
            raise ScenarioError(f"unknown scenario {config.scenario!r}; known: {', '.join(CATALOGUE)}")
        # One tick per batch: each tick is measured, broadcast and alarmed as soon as it is simulated.
        self.world = World(self.fleet, self, seed=config.seed, start=start, interval_s=config.interval_s,
                           batch_rows=self.fleet.size)
        self.scenarios = Scenarios(self.world)
        # The file comes last, so that nothing before it can fail and leave it open.
        self.recording_path = recording_path(data_dir, config.preset or config.fleet.name, datetime.now(UTC))
        self.recorder = create_recorder(self.recording_path, self.fleet, RunInfo(
            config.seed, start, None, config.interval_s, config.config(), config.preset))
        self.alarms = AlarmMonitor.for_fleet(self.fleet)
        self.encoder = TelemetryEncoder(self.fleet)
        # Without a given start, virtual time begins at the wall clock's now (the world took a while to
        # build), so at 1x each tick is due when the wall clock reaches its timestamp.
        offset_s = 0.0 if config.start else max(0.0, wall_time() - start.timestamp())
        self.clock = PacedClock(offset_s, config.speed, paused=config.paused)
        self.backfill = Backfill(start, config.backfill_s) if config.backfill_s else None
        self.timelines: list[InstalledTimeline] = []
        # The original's status "scenario": the start's, until a clear of every battery.
        self.scenario = config.scenario
        self.started_at = datetime.now(UTC)
        self.stopped_at: datetime | None = None
        self.error: str | None = None
        self.readings_generated = 0
        self.ticks = 0
        self.last_tick_us: int | None = None
        self.alarm_changes = 0
        self._pending: list[ReadingBatch] = []
        self._pending_rows = 0
        self._last_record = time.monotonic()
        self._status_changed = False
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._closer: asyncio.Future | None = None
        self._reader_cursors: list = []
        self.attached: list[Attached] = []
        try:
            for timeline in timelines:
                self._install(timeline)
            if config.scenario:
                self.scenarios.apply(config.scenario, source="start")
            for attach in attachments:
                self.attached.append(attach(self))
        except BaseException:
            self._close_attached()
            self.recorder.close(status="incomplete")  # never left open (and the file locked) by a failed start
            raise

    # ------------------------------------------------------------------------------ sink
    def readings(self, batch: ReadingBatch) -> None:
        """A tick, measured: alarms, one telemetry frame, and the recording, all from the same values."""
        columns, size = batch.columns, self.fleet.size
        live = self.backfill is None or self.backfill.done
        for tick in range(batch.ticks):
            rows = slice(tick * size, (tick + 1) * size)
            seq = batch.first_tick + tick
            timestamp_us = int(columns["timestamp_us"][rows.start])
            if live:
                self.broadcaster.publish(self.encoder.tick(seq, columns, rows))
            changes = self.alarms.evaluate(
                timestamp_us, columns["voltage_v"][rows], columns["temperature_c"][rows],
                columns["internal_resistance_mohm"][rows], columns["soh_pct"][rows], columns["ambient_c"][rows],
                columns["mode"][rows],
            )
            if changes:
                self._alert(seq, timestamp_us, changes, publish=live)
            self.last_tick_us = timestamp_us
        self.ticks += batch.ticks
        self.readings_generated += batch.rows
        self._pending.append(batch)
        self._pending_rows += batch.rows
        for attached in self.attached:
            attached.readings(batch)

    def event(self, event: Event) -> None:
        self.recorder.event(event)
        for attached in self.attached:
            attached.event(event)
        if event.kind.startswith("scenario_"):
            self._status_changed = True

    def _alert(self, seq: int, timestamp_us: int, changes: list[AlarmChange], publish: bool = True) -> None:
        alerts = []
        for change in changes:
            event = change.event(self.fleet)
            self.recorder.event(event)
            for attached in self.attached:
                attached.event(event)
            alerts.append({"battery_id": event.battery_id, "site_id": event.site_id, "string_id": event.string_id,
                           "timestamp": iso_utc(timestamp_us), **event.detail})
        self.alarm_changes += len(changes)
        if not publish:
            return
        jars = np.array([change.jar for change in changes])
        self.broadcaster.publish(AlertFrame(self.encoder, seq, iso_utc(timestamp_us), jars, alerts))

    def _record_pending(self) -> None:
        if not self._pending:
            return
        batches, self._pending, self._pending_rows = self._pending, [], 0
        self.recorder.readings(ReadingBatch.concatenate(batches))
        self._last_record = time.monotonic()

    # ------------------------------------------------------------------------------ pacing
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def begin(self) -> None:
        self._task = asyncio.create_task(self._pace(), name=f"pacer-{self.slot}")

    async def _pace(self) -> None:
        env = self.world.env
        try:
            if self.backfill is not None:
                await self._backfill()
            while not self._stopping:
                target = self.clock.now()
                deadline = time.monotonic() + SLICE_S
                behind = False
                while env.peek() <= target:
                    env.step()
                    if time.monotonic() > deadline:
                        behind = True
                        break
                self._after_slice()
                if behind:
                    await asyncio.sleep(0)
                    continue
                delay = min(self.clock.wall_delay_until(env.peek()), MAX_SLEEP_S)
                self._wake.clear()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self._wake.wait(), delay)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(0)
        except Exception as error:  # the world or the disk failed: keep what was recorded, mark it incomplete, say so
            log.exception("live simulation %s failed", self.slot)
            self._stopping = True
            await self._finish("incomplete")
            # Said once the recording is closed, so a client that sees the error can open the file.
            self.error = (f"recording: writing {self.recording_path.name} failed: {write_failure(error)}"
                          if isinstance(error, (OSError, duckdb.Error)) else f"{type(error).__name__}: {error}")
            self.publish_status()

    async def _backfill(self) -> None:
        """Run from the start to the wall clock's now as fast as possible, then anchor the clock there.

        "Now" is read again after every slice, so the wall seconds the back-fill itself took are run too,
        and pacing starts from the real now, not from when the back-fill began.
        """
        env, backfill = self.world.env, self.backfill
        began, reported = time.monotonic(), 0.0
        while not self._stopping:
            target = self._wall_time() - self.world.start.timestamp()
            backfill.target_s = target
            if env.peek() > target:
                break
            deadline = time.monotonic() + BACKFILL_SLICE_S
            while env.peek() <= target and time.monotonic() < deadline:
                env.step()
            backfill.done_s, backfill.wall_s = env.now, time.monotonic() - began
            backfill.readings = self.readings_generated
            self._after_slice()
            if time.monotonic() - reported >= BACKFILL_REPORT_EVERY_S:
                reported = time.monotonic()
                self.publish_status()
            await asyncio.sleep(0)
        # The readings of the back-fill are all recorded before the first live tick goes out.
        self.world.flush()
        self._record_pending()
        backfill.done_s, backfill.wall_s = env.now, time.monotonic() - began
        backfill.readings = self.readings_generated
        backfill.done = True
        self.clock.seek(backfill.target_s)  # keeps a pause or a speed asked for meanwhile
        self.publish_status()

    def _after_slice(self) -> None:
        if self._pending_rows >= RECORD_ROWS or (self._pending
                                                 and time.monotonic() - self._last_record >= RECORD_EVERY_S):
            self._record_pending()
        if self._status_changed:
            self._status_changed = False
            self.publish_status()

    def wake(self) -> None:
        """Make the pacer look at the clock again now (after a speed, pause or scenario change)."""
        self._wake.set()

    # ------------------------------------------------------------------------------ control
    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed, virtual_now=self.world.env.now)
        self.wake()
        self.publish_status()

    def pause(self) -> None:
        self.clock.pause(virtual_now=self.world.env.now)
        self.wake()
        self.publish_status()

    def resume(self) -> None:
        self.clock.resume()
        self.wake()
        self.publish_status()

    def install_timeline(self, timeline: Timeline | str) -> Timeline:
        """Schedule a timeline's events from now on: a parsed one, or its text or shipped name (TimelineError if it
        is invalid for this fleet)."""
        return self._install(timeline if isinstance(timeline, Timeline) else resolve_timeline(timeline))

    def _install(self, timeline: Timeline) -> Timeline:
        timeline.install(self.world, self.scenarios)
        self.timelines.append(InstalledTimeline(timeline, self.sim_now))
        self.wake()
        self._status_changed = True
        return timeline

    def reader_cursor(self):
        """A cursor on the recording for a reader in this process; closed when the session stops, since an
        open one would keep the recorder from checkpointing the file."""
        cursor = self.recorder.cursor()
        self._reader_cursors.append(cursor)
        return cursor

    async def stop(self, status: str = "complete") -> None:
        """Stop pacing, record what is pending, and close the recording (marked ``status``)."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            await self._task
        await self._finish(status)

    async def _finish(self, status: str) -> None:
        """Close once, however many stop requests (or a failure) arrive; each waits until it is done."""
        if self._closer is None:
            self._closer = asyncio.ensure_future(self._close(status))
        await asyncio.shield(self._closer)

    async def _close(self, status: str) -> None:
        """Record what is pending, then close the recorder (marking the run), then the readers' cursors.

        Each step runs whatever the one before it raised: a failed last batch (a full disk) still closes the
        file, marked incomplete, and a reader's cursor can neither keep the run from being marked nor the
        file from being released.
        """
        self.stopped_at = datetime.now(UTC)
        try:
            self.world.flush()
            self._record_pending()
        except Exception as error:
            log.exception("recording the last readings of %s failed", self.recording_path)
            self.error = self.error or f"recording: {type(error).__name__}: {error}"
            status = "incomplete"
        wall_s = (self.stopped_at - self.started_at).total_seconds()
        try:
            await asyncio.to_thread(self.recorder.close, status=status, wall_seconds=wall_s)
        except Exception as error:
            log.exception("closing the recording %s failed", self.recording_path)
            self.error = self.error or f"recording: {type(error).__name__}: {error}"
        for cursor in self._reader_cursors:
            try:
                cursor.close()
            except duckdb.Error:
                log.warning("closing a reader's cursor on %s failed", self.recording_path, exc_info=True)
        await asyncio.to_thread(self._close_attached)
        self.publish_status()

    def _close_attached(self) -> None:
        """Each attachment closed whatever the others do: one that fails cannot keep the rest open."""
        for attached in self.attached:
            try:
                attached.close()
            except Exception:
                log.exception("closing %r of %s failed", attached, self.recording_path)

    # ------------------------------------------------------------------------------ reporting
    @property
    def sim_now(self) -> datetime:
        return self.world.start + timedelta(seconds=self.world.env.now)

    def status(self) -> dict:
        config, running = self.config, self.running and not self._stopping
        return {
            # The original's fields.
            "is_running": running,
            # A stopped simulation has no batteries and no scenario (as the original said).
            "batteries_count": self.fleet.size if running else 0,
            "interval_seconds": config.interval_s,
            "scenario": self.scenario if running else None,
            "started_at": self.started_at.isoformat(),
            "readings_generated": self.readings_generated,
            # Ours.
            "session": self.slot,
            "is_paused": running and self.clock.paused,
            "speed": self.clock.speed,
            "seed": config.seed,
            "preset": config.preset,
            "fleet": config.fleet.name,
            "sites_count": len(self.fleet.site_ids),
            "strings_count": len(self.fleet.string_ids),
            "sim_start": self.world.start.astimezone(UTC).isoformat(),
            "sim_time": iso_utc(self.last_tick_us) if self.last_tick_us is not None else None,
            "seq": self.ticks - 1 if self.ticks else None,
            "ticks": self.ticks,
            "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
            "recording_id": self.recorder.run_id,
            "recording_path": str(self.recording_path),
            "active_scenarios": self.scenarios.active(),
            "active_alarms": len(self.alarms.active_alarms()),
            "timelines": [installed.timeline.source for installed in self.timelines],
            "backfill": self.backfill.status() if self.backfill is not None else None,
            "error": self.error,
        }

    def publish_status(self) -> None:
        self.broadcaster.publish(MessageFrame({"type": "status", **self.status()}))


def idle_status(slot: str) -> dict:
    """Status of a slot where nothing has been started yet (the original's shape)."""
    # interval_seconds: the start request's default, as the original reported it before any start.
    return {"is_running": False, "batteries_count": 0, "interval_seconds": 5, "scenario": None, "started_at": None,
            "readings_generated": 0, "session": slot, "is_paused": False, "recording_id": None}


@dataclass
class Backfill:
    """Progress of a back-fill: virtual seconds run of those from the start to now."""

    start: datetime
    requested_s: float
    target_s: float = 0.0  # virtual seconds from the start to the wall clock's now (moves on while running)
    done_s: float = 0.0
    wall_s: float = 0.0
    readings: int = 0
    done: bool = False

    def status(self) -> dict:
        target = max(self.target_s, self.done_s, 1e-9)
        return {"state": "done" if self.done else "running", "requested_s": self.requested_s,
                "from": self.start.isoformat(), "to": (self.start + timedelta(seconds=self.target_s)).isoformat(),
                "progress": 1.0 if self.done else round(min(1.0, self.done_s / target), 4),
                "readings": self.readings, "wall_s": round(self.wall_s, 3),
                "readings_per_s": round(self.readings / self.wall_s) if self.wall_s > 0 else None}


class SessionLimit(RuntimeError):
    """Starting this session would pass the server's limit on sessions or on the jars it paces at once."""


class AlreadyRunning(RuntimeError):
    pass


class NotRunning(RuntimeError):
    pass


@dataclass
class Slot:
    name: str
    broadcaster: Broadcaster
    session: LiveSession | None = None  # the running one, or the last one (for its status)
    starting: bool = False

    @property
    def running(self) -> LiveSession | None:
        return self.session if self.session is not None and self.session.running else None


@dataclass
class Sessions:
    """Live simulations by slot name; the original endpoints use :data:`DEFAULT_SLOT`.

    A named slot comes into being when a simulation is first started in it, and stays (with its last
    session's status and its WebSocket subscribers) until the server stops."""

    data_dir: Path
    broadcaster_settings: dict = field(default_factory=dict)
    slots: dict[str, Slot] = field(default_factory=dict)
    wall_time: Callable[[], float] = time.time  # "now" for new sessions (a back-fill ends there)
    attachments: Sequence[Attach] = ()  # what every session feeds besides recording and WebSocket
    max_named_sessions: int = MAX_NAMED_SESSIONS
    max_live_jars: int = MAX_LIVE_JARS

    def slot(self, name: str = DEFAULT_SLOT) -> Slot:
        if name not in self.slots:
            self.slots[name] = Slot(name, Broadcaster(**self.broadcaster_settings))
        return self.slots[name]

    def find(self, name: str) -> Slot | None:
        """The slot of that name if a simulation was ever started in it (the default slot always is)."""
        return self.slot(name) if name == DEFAULT_SLOT else self.slots.get(name)

    def running(self, name: str = DEFAULT_SLOT) -> LiveSession:
        slot = self.find(name)
        session = slot.running if slot is not None else None
        if session is None:
            where = "POST /api/v1/simulation/start" if name == DEFAULT_SLOT else f"POST /api/v1/sessions/{name}/simulation/start"
            raise NotRunning(f"no simulation is running; start one with {where}")
        return session

    def _check_room(self, config: LiveConfig, name: str) -> None:
        named = [slot for slot in self.slots if slot != DEFAULT_SLOT]
        if name != DEFAULT_SLOT and name not in self.slots and len(named) >= self.max_named_sessions:
            raise SessionLimit(f"this server holds at most {self.max_named_sessions} named sessions "
                               f"({', '.join(named)}); reuse one of them")
        live = sum(slot.running.fleet.size for slot in self.slots.values() if slot.running is not None)
        if live + config.fleet.jar_count > self.max_live_jars:
            raise SessionLimit(f"{config.fleet.jar_count:,} jars more than the {live:,} running would pass the "
                               f"{self.max_live_jars:,} jars this server paces at once; stop a session first")

    async def start(self, config: LiveConfig, name: str = DEFAULT_SLOT) -> LiveSession:
        existing = self.find(name)
        if existing is not None and (existing.running is not None or existing.starting):
            where = "/api/v1" if name == DEFAULT_SLOT else f"/api/v1/sessions/{name}"
            raise AlreadyRunning(f"a simulation is already running; stop it first with POST {where}/simulation/stop")
        self._check_room(config, name)
        slot = self.slot(name)
        slot.starting = True
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Building a large fleet and creating its recording take a moment: not on the event loop.
            session = await asyncio.to_thread(LiveSession, config, self.data_dir, slot.broadcaster, name,
                                              self.wall_time, self.attachments)
        finally:
            slot.starting = False
        slot.session = session
        session.begin()
        session.publish_status()
        return session

    async def stop(self, name: str = DEFAULT_SLOT) -> LiveSession:
        session = self.running(name)
        await session.stop()
        return session

    def live_connection(self, path: Path):
        """A DuckDB cursor on a recording a running session is writing (None if none is): in-process
        readers (replay, SQL) must go through the writer's connection while it is open. The cursor is
        closed when the session stops (the file can then be opened on its own)."""
        for slot in self.slots.values():
            session = slot.running
            if session is not None and session.recording_path.resolve() == Path(path).resolve():
                return session.reader_cursor()
        return None

    async def stop_all(self) -> None:
        for slot in self.slots.values():
            if slot.running is not None:
                await slot.running.stop()

