"""Recordings and replay over HTTP: list recordings, play one, control it, watch it on a WebSocket.

    app.state.replays = Replays(data_dir, live_connection=...); app.include_router(router)

    GET  /api/v1/recordings                  id, preset, span, readings, status of each recording
    GET  /api/v1/recordings/{id}             one recording, with its sites and battery ids
    POST /api/v1/replay/start                {recording, speed, from, to, battery_ids, site_ids, string_ids, loop,
                                              start_paused, delay_s}
    POST /api/v1/replay/pause | resume | stop
    POST /api/v1/replay/step                 one frame, while paused (and stays paused on it)
    POST /api/v1/replay/seek                 {"time": ISO 8601 or +offset}
    POST /api/v1/replay/speed                {"speed": 60 | "max"}
    POST /api/v1/replay/window               {"from", "to", "loop"}: change the (A-B loop) window while playing
    GET  /api/v1/replay/status               playing | following | paused | ended (or idle), position, requested
                                             and achieved speed and frame rate
    WS   /api/v1/ws/replay                   telemetry frames as live, a playback_state frame after every
                                             command and change of state, and clock frames
                                             {"type": "clock", "sim_time", "state"} every CLOCK_EVERY_S of wall
                                             time while playing or following, and after every playback_state

One replay session at a time: starting another replaces it. A replay that has ended (finished, or
failed) keeps its place until it is stopped or replaced, so it can still be sought back into; one that
failed says why in ``ended_reason``, and ``stop`` and a new ``start`` always work after it.

A slow WebSocket subscriber is handled as on the live socket (its own queue; oldest frames dropped and
counted) while the replay is paced; at ``max`` the replay instead waits for its subscribers, so a
consumer gets everything as fast as it takes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, HTTPException, WebSocket
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from battsim.recordings.format import DamagedRecordingError, NotARecordingError, RecordingBusyError
from battsim.recordings.replay import MOVING, Player, ReplayError, ReplaySource, UnreadableRecordingError, parse_speed
from battsim.service.broadcast import Broadcaster, MessageFrame, ReadingFilter
from battsim.service.limits import brief
from battsim.service.routes_query import UnknownRecordingError, find_recording, within
from battsim.service.simulation_bodies import Answer

log = logging.getLogger(__name__)

API = "/api/v1"
# Longest single wait of the pacing task, so it notices a command or a loop restart promptly anyway.
MAX_WAIT_S = 0.5
# At max speed the replay takes only as many frames as fit in half of every subscriber's queue room
# (frames and bytes), so none is dropped; it waits this long between looks when there is no room.
BACKPRESSURE_WAIT_S = 0.002
# A clock frame goes out this often (wall seconds) while the replay moves: 4 Hz, enough for a UI's time
# display or a consumer's sim-time source (as ROS's /clock), and negligible beside the telemetry.
CLOCK_EVERY_S = 0.25
MAX_DELAY_S = 3600.0

LiveConnection = Callable[[Path], "duckdb.DuckDBPyConnection | None"]
# Lengths of the text fields: a recording id as routes_query.RECORDING_ID allows, a time or an offset.
MAX_ID_CHARS = 200
MAX_TIME_CHARS = 64
MAX_IDS = 10_000
IdList = list[Annotated[str, Field(max_length=100)]]



# ------------------------------------------------------------------------------------ answers
class RecordingEntry(Answer):
    """A recording in the listing; one that cannot be read has only id, file, status and detail."""

    id: str = Field(description="Its file name without .duckdb: what replay, query and history take.")
    file: str
    status: str = Field(description="complete, incomplete, running, busy (written by another process) or "
                                    "unreadable (see detail).")
    detail: str | None = None
    run_id: str | None = None
    preset: str | None = None
    start: str | None = Field(default=None, description="The first reading's virtual time, ISO 8601 UTC.")
    end: str | None = None
    span_s: float | None = None
    interval_s: int | None = None
    readings: int | None = None
    batteries: int | None = None
    sites: list[str] | None = Field(default=None, description="Its site ids.")
    timezone: str | None = None
    size_bytes: int | None = None


class RecordingDetail(RecordingEntry):
    battery_ids: list[str]


class PlaybackState(Answer):
    """The replay's state, as every command answers it and every playback_state frame carries it."""

    state: str = Field(description="idle (no replay), playing, following (at a live recording's edge), paused "
                                   "or ended.")
    session: int | None = Field(default=None, description="The replay session's number (a new one per start).")
    recording: str | None = None
    run_id: str | None = None
    batteries: int | None = None
    resumes_in_s: float | None = Field(default=None, description="Left of a start's delay_s, while it waits.")
    position: str | None = Field(default=None, description="The virtual time reached, ISO 8601 UTC.")
    speed: float | str | None = Field(default=None, description="Requested: a factor, or \"max\".")
    achieved_speed: float | None = None
    achieved_frames_per_s: float | None = None
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    loop: bool | None = None
    loops: int | None = None
    frames: int | None = None
    readings: int | None = None
    ended_reason: str | None = None


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    recording: str = Field(max_length=MAX_ID_CHARS, examples=["outage-week"],
                           description="File name in the data directory (without .duckdb) or run id.")
    speed: float | Annotated[str, Field(max_length=16)] = Field(
        1.0, description="Virtual seconds per wall second, 0.01-100000, or \"max\".", examples=[60, "max"])
    from_: str | None = Field(None, alias="from", max_length=MAX_TIME_CHARS,
                              description="ISO 8601 (years 1970-2299), or an offset from the start such as \"+2h\" "
                                          "(at most 100 years; default: the start).")
    to: str | None = Field(None, max_length=MAX_TIME_CHARS,
                           description="End, exclusive: ISO 8601, \"+6h\" from the start or \"-30m\" from the end "
                                       "(default, or later than the end of a finished recording: its end).")
    battery_ids: IdList = Field(default_factory=list, max_length=MAX_IDS,
                                description="Only these batteries (default all).")
    site_ids: IdList = Field(default_factory=list, max_length=MAX_IDS,
                             description="Only these sites; with battery_ids, both apply.")
    string_ids: IdList = Field(default_factory=list, max_length=MAX_IDS,
                               description="Only these strings; every filter given applies.")
    loop: bool = False
    start_paused: bool = False
    delay_s: float = Field(0.0, ge=0, le=MAX_DELAY_S, description="Wall seconds to wait (paused) before playing; "
                                                                   "any command meanwhile cancels the wait.")


class WindowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(None, alias="from", max_length=MAX_TIME_CHARS,
                              description="New start (A), as on start; default: unchanged.")
    to: str | None = Field(None, max_length=MAX_TIME_CHARS, description="New end (B), as on start; default: unchanged.")
    loop: bool | None = Field(None, description="Loop the window; default: unchanged.")


class SeekRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: str = Field(max_length=MAX_TIME_CHARS, examples=["2026-01-01T14:00+07:00", "+3h"],
                      description="ISO 8601, or an offset from the recording's start (\"+3h\") or end (\"-1h\").")


class SpeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: float | Annotated[str, Field(max_length=16)] = Field(description="0.01-100000, or \"max\".",
                                                                examples=[3600])


def _invalid(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, naming the field."""
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": brief(message), "type": "value_error"}])


class ReplayFailed(RuntimeError):
    """A command the replay could not carry out (its recording became unreadable, say): a 409."""


class ReplaySession:
    """One player, the task that paces it, and the state frames it publishes."""

    _ids = itertools.count(1)

    def __init__(self, recording_id: str, source: ReplaySource, player: Player, broadcaster: Broadcaster,
                 delay_s: float = 0.0):
        self.id = next(self._ids)
        self.recording_id, self.source, self.player, self.broadcaster = recording_id, source, player, broadcaster
        self._loop = asyncio.get_running_loop()  # its time() is read from worker threads too (a monotonic clock)
        # A delayed start: the player waits paused until then, in loop time (None: no wait pending).
        self._resume_at = self._loop.time() + delay_s if delay_s > 0 else None
        self._clock_at = 0.0  # loop time the last clock frame went out
        self._wake = asyncio.Event()
        self._seen_changes = player.changes
        self._frame_bytes = 1  # the size of the last frame sent, to judge the subscribers' room in bytes
        self._stopping = False
        self.task = asyncio.create_task(self._run(), name=f"replay-{self.id}")

    def status(self) -> dict:
        waiting = None if self._resume_at is None else max(0.0, round(self._resume_at - self._loop.time(), 3))
        return {"session": self.id, "recording": self.recording_id, "run_id": self.source.run_id,
                "batteries": len(self.player.window.keys), "resumes_in_s": waiting, **self.player.status().as_dict()}


    async def current_status(self) -> dict:
        # Off the event loop: the player's lock may be held by a poll waiting on DuckDB.
        return await asyncio.to_thread(self.status)

    async def publish_state(self) -> dict:
        self._seen_changes = self.player.changes
        status = await self.current_status()
        self.broadcaster.publish(MessageFrame({"type": "playback_state", **status}))
        self._publish_clock(status["position"], status["state"])
        return status

    def _publish_clock(self, sim_time: str, state: str) -> None:
        self._clock_at = self._loop.time()
        self.broadcaster.publish(MessageFrame({"type": "clock", "sim_time": sim_time, "state": state}))

    async def _tick_clock(self) -> None:
        """A clock frame, if one is due (CLOCK_EVERY_S since the last)."""
        if self._loop.time() - self._clock_at >= CLOCK_EVERY_S:
            position = await asyncio.to_thread(self.player.position)
            self._publish_clock(position.isoformat(), self.player.state)

    async def command(self, action: Callable[[], None]) -> dict:
        """Run a player command off the event loop (it may query DuckDB), then tell everyone.

        ReplayError (bad input) is the caller's to report; any other failure is a :class:`ReplayFailed`.
        """
        if self.task.done():
            raise ReplayFailed(f"replay {self.id} has been stopped; start another with POST {API}/replay/start")
        self._resume_at = None  # a command during a delayed start takes over from it
        try:
            await asyncio.to_thread(action)
        except ReplayError:
            raise
        except Exception as error:  # e.g. its recording became unreadable
            log.warning("replay %s of %s: a command failed", self.id, self.recording_id, exc_info=True)
            raise ReplayFailed(f"the replay could not do that ({_first_line(error)}); stop it or start another") \
                from None
        self._wake.set()
        return await self.publish_state()

    async def _run(self) -> None:
        """Pace the player until stopped. An ended replay (finished, or failed) waits for a command: a seek
        brings it back, a stop or a new replay closes it."""
        player = self.player
        try:
            await self._delay()
            while not self._stopping:
                try:
                    if player.state == "ended":
                        await self._wait(math.inf)
                    else:
                        await self._play_some()
                except Exception as error:  # the live recording it followed was closed, a damaged block, ...
                    log.warning("replay %s of %s failed", self.id, self.recording_id, exc_info=True)
                    player.stop(f"error: {_first_line(error)}")
                    await self.publish_state()
        finally:
            await asyncio.to_thread(self._close)

    async def _delay(self) -> None:
        """A delayed start: wait (paused), then resume, unless a command or a stop came first."""
        while self._resume_at is not None and not self._stopping and self._loop.time() < self._resume_at:
            await self._wait(self._resume_at - self._loop.time())
        if self._resume_at is not None and not self._stopping:
            self._resume_at = None
            await asyncio.to_thread(self.player.resume)
            await self.publish_state()

    async def _play_some(self) -> None:
        player = self.player
        batch = 4096
        if math.isinf(player.speed) and self.broadcaster.subscribers:
            batch = await self._room()
        frames = await asyncio.to_thread(player.poll, batch)
        for frame in frames:
            self.broadcaster.publish(frame)
            self._frame_bytes = len(frame.payload)
        if player.changes != self._seen_changes:
            await self.publish_state()
        elif player.state in MOVING:
            await self._tick_clock()
        if player.state != "ended":
            delay = await asyncio.to_thread(player.wall_delay)
            if delay > 0:
                await self._wait(min(delay, MAX_WAIT_S, CLOCK_EVERY_S if player.state in MOVING else math.inf))

    async def _wait(self, seconds: float) -> None:
        """Until a command or a stop wakes the task, or ``seconds`` have passed."""
        self._wake.clear()
        if self._stopping:
            return
        try:
            await asyncio.wait_for(self._wake.wait(), None if math.isinf(seconds) else seconds)
        except TimeoutError:
            pass

    async def _room(self) -> int:
        """Frames every subscriber can take without dropping any (waits until it is at least one)."""
        while True:
            room = min((min(s.max_frames // 2 - len(s.queue), (s.max_bytes // 2 - s.queued_bytes) // self._frame_bytes)
                        for s in self.broadcaster.subscribers.values()), default=4096)
            if room > 0:
                return room
            await asyncio.sleep(BACKPRESSURE_WAIT_S)

    def _close(self) -> None:
        for close in (self.player.close, self.source.close):
            try:
                close()
            except Exception:  # releasing must not fail a stop; the next replay starts either way
                log.warning("replay %s: closing failed", self.id, exc_info=True)

    async def stop(self) -> dict:
        """Stop and release the recording; works in any state, after any error, and more than once."""
        if not self.task.done():
            self._stopping = True
            await asyncio.to_thread(self.player.stop)
            self._wake.set()
            await self.task
        return await self.publish_state()


def _first_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return brief(text)


class Replays:
    """The recordings in ``data_dir`` and the one replay session (``app.state.replays``).

    ``live_connection(path)`` returns a new DuckDB cursor on a recording this process is writing (None
    otherwise), which the replay closes when done: DuckDB lets one process hold a file read-write, so
    such a recording is read through its writer's connection, up to what has been committed.
    """

    def __init__(self, data_dir: str | Path, live_connection: LiveConnection | None = None,
                 broadcaster: Broadcaster | None = None):
        self.data_dir = Path(data_dir)
        self.live_connection = live_connection
        self.broadcaster = broadcaster or Broadcaster()
        self.current: ReplaySession | None = None

    def session(self) -> ReplaySession:
        if self.current is None:
            raise HTTPException(404, detail=f"no replay session; start one with POST {API}/replay/start")
        return self.current

    def open_source(self, recording_id: str) -> tuple[Path, ReplaySource]:
        try:
            path = find_recording(self.data_dir, recording_id)
        except ValueError as error:
            raise _invalid("recording", str(error)) from None
        except UnknownRecordingError as error:
            raise HTTPException(404, detail=str(error)) from None
        try:
            return path, self.source_of(path)
        except RecordingBusyError:
            raise HTTPException(409, detail=f"recording {recording_id!r} is being written by another process; "
                                            "replay it through the server that records it") from None
        except (DamagedRecordingError, UnreadableRecordingError) as error:
            raise HTTPException(409, detail=f"recording {recording_id!r} cannot be read: {brief(str(error))}") from None
        except (NotARecordingError, FileNotFoundError):
            raise HTTPException(404, detail=f"{recording_id!r} is not a battsim recording") from None

    def source_of(self, path: Path) -> ReplaySource:
        connection = self.live_connection(path) if self.live_connection else None
        if connection is not None:
            # A cursor made for us: closed with the source, so it does not outlive the replay.
            return ReplaySource.from_connection(connection, path.stem, owned=True)
        return ReplaySource.open(path)

    def listing(self) -> list[dict]:
        # A symlink to a file outside the data directory is not followed (nor served by id).
        entries = (self.listed(path) for path in sorted(self.data_dir.glob("*.duckdb")) if within(self.data_dir, path))
        return [entry for entry in entries if entry is not None]

    def listed(self, path: Path) -> dict | None:
        """A recording's entry in the listing; one that cannot be read is marked so (never failing the listing),
        a file that is no recording at all is left out (None)."""
        entry = {"id": path.stem, "file": path.name}
        try:
            source = self.source_of(path)
        except RecordingBusyError as error:
            return {**entry, "status": "busy", "detail": brief(str(error))}
        except (DamagedRecordingError, UnreadableRecordingError) as error:
            return {**entry, "status": "unreadable", "detail": brief(str(error))}
        except (NotARecordingError, FileNotFoundError):
            return None
        except Exception as error:  # whatever is wrong with one file, the others are still listed
            log.warning("listing %s failed", path, exc_info=True)
            return {**entry, "status": "unreadable", "detail": _first_line(error)}
        try:
            return describe(path, source)
        except Exception as error:
            log.warning("listing %s failed", path, exc_info=True)
            return {**entry, "status": "unreadable", "detail": _first_line(error)}
        finally:
            source.close()

    async def replace(self, replay: ReplaySession) -> None:
        if self.current is not None:
            previous, self.current = self.current, None
            await previous.stop()
        self.current = replay


def describe(path: Path, source: ReplaySource) -> dict:
    return {"id": path.stem, "file": path.name, "size_bytes": path.stat().st_size, **source.info.as_dict()}


def replays_of(connection: HTTPConnection) -> Replays:
    return connection.app.state.replays


AppReplays = Annotated[Replays, Depends(replays_of)]
router = APIRouter(tags=["replay"])
# Answers keep exactly the keys the code set (an unreadable recording's entry has no span, idle no position).
EXACT = {"response_model_exclude_unset": True, "response_model_by_alias": True}
PLAYBACK = {"response_model": PlaybackState, **EXACT}


# ------------------------------------------------------------------------------------ recordings
@router.get(f"{API}/recordings", summary="Recordings in the data directory", response_model=list[RecordingEntry],
            **EXACT)
def recordings(replays: AppReplays) -> list[dict]:
    return replays.listing()


@router.get(f"{API}/recordings/{{recording_id}}", summary="One recording, with its sites and batteries",
            response_model=RecordingDetail, **EXACT,
            responses={404: {"description": "No such recording"}, 409: {"description": "Written elsewhere"}})
def recording(recording_id: str, replays: AppReplays) -> dict:
    path, source = replays.open_source(recording_id)
    try:
        return {**describe(path, source), "battery_ids": source.battery_ids}
    finally:
        source.close()


# ------------------------------------------------------------------------------------ replay
@router.post(f"{API}/replay/start", summary="Replay a recording (replaces the current replay)", **PLAYBACK,
             responses={404: {"description": "No such recording"}, 422: {"description": "Bad window, "
                        "filter or speed (the detail names the field)"}})
async def start(request: StartRequest, replays: AppReplays) -> dict:
    try:
        speed = parse_speed(request.speed, "speed")
    except ReplayError as error:
        raise _invalid(error.field, error.message) from None
    path, source = await asyncio.to_thread(replays.open_source, request.recording)
    try:
        window = source.window(request.from_, request.to, request.battery_ids, request.site_ids, request.string_ids)
        paused = request.start_paused or request.delay_s > 0
        player = await asyncio.to_thread(Player, source, window, speed, request.loop, paused)
    except ReplayError as error:
        source.close()
        raise _invalid(error.field, error.message) from None
    except (duckdb.Error, NotARecordingError, OSError) as error:  # its first chunk could not be read
        source.close()
        raise HTTPException(409, detail=f"recording {request.recording!r} cannot be read: "
                                        f"{_first_line(error)}") from None
    except BaseException:
        source.close()
        raise
    replay = ReplaySession(path.stem, source, player, replays.broadcaster,
                           0.0 if request.start_paused else request.delay_s)
    await replays.replace(replay)
    return await replay.publish_state()


async def run(replay: ReplaySession, action: Callable[[], None], field: str = "") -> dict:
    """A command, with its failures as HTTP errors: bad input 422 (naming ``field``), anything else 409."""
    try:
        return await replay.command(action)
    except ReplayError as error:
        raise _invalid(field or error.field, error.message) from None
    except ReplayFailed as error:
        raise HTTPException(409, detail=str(error)) from None


NO_REPLAY = {404: {"description": "No replay session"}}


@router.post(f"{API}/replay/pause", summary="Pause the replay", responses=NO_REPLAY, **PLAYBACK)
async def pause(replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, replay.player.pause)


@router.post(f"{API}/replay/resume", summary="Resume the replay", responses=NO_REPLAY, **PLAYBACK)
async def resume(replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, replay.player.resume)


@router.post(f"{API}/replay/step", summary="One frame, while paused (the replay stays paused on it)", **PLAYBACK,
             responses={**NO_REPLAY, 422: {"description": "Not paused"}})
async def step(replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, replay.player.step, "step")


@router.post(f"{API}/replay/window", summary="Change the window (A-B loop) while playing", **PLAYBACK,
             responses={**NO_REPLAY, 422: {"description": "Bad from or to"}})
async def window(request: WindowRequest, replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, lambda: replay.player.set_window(request.from_, request.to, request.loop))


@router.post(f"{API}/replay/stop", summary="Stop the replay", responses=NO_REPLAY, **PLAYBACK)
async def stop(replays: AppReplays) -> dict:
    return await replays.session().stop()


@router.post(f"{API}/replay/seek", summary="Jump to a time; the next frame holds each battery's last value",
             **PLAYBACK,
             responses={**NO_REPLAY, 422: {"description": "Outside the window"}})
async def seek(request: SeekRequest, replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, lambda: replay.player.seek(request.time), "time")


@router.post(f"{API}/replay/speed", summary="Change the replay speed", **PLAYBACK,
             responses={**NO_REPLAY, 422: {"description": "Out of range"}})
async def speed(request: SpeedRequest, replays: AppReplays) -> dict:
    replay = replays.session()
    return await run(replay, lambda: replay.player.set_speed(request.speed), "speed")


@router.get(f"{API}/replay/status", summary="The replay's state, position and requested/achieved speed", **PLAYBACK)
async def status(replays: AppReplays) -> dict:
    if replays.current is None:
        return {"state": "idle"}
    return await replays.current.current_status()


@router.websocket(f"{API}/ws/replay")
async def replay_socket(websocket: WebSocket, replays: AppReplays):
    """The replay's telemetry frames (as the live socket's) and playback_state frames."""
    await websocket.accept()
    replay = replays.current
    greeting = {"type": "playback_state", **(await replay.current_status() if replay else {"state": "idle"})}
    await replays.broadcaster.serve(websocket, ReadingFilter(), greeting)
