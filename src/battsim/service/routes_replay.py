"""Recordings and replay over HTTP: list recordings, play one, control it, watch it on a WebSocket.

    app.include_router(replay_router(data_dir, live_connection=...))

    GET  /api/v1/recordings                  id, preset, span, readings, status of each recording
    GET  /api/v1/recordings/{id}             one recording, with its sites and battery ids
    POST /api/v1/replay/start                {recording, speed, from, to, battery_ids, site_ids, loop, start_paused}
    POST /api/v1/replay/pause | resume | stop
    POST /api/v1/replay/seek                 {"time": ISO 8601 or +offset}
    POST /api/v1/replay/speed                {"speed": 60 | "max"}
    GET  /api/v1/replay/status               playing | paused | ended (or idle), position, requested and achieved speed
    WS   /api/v1/ws/replay                   telemetry frames as live, and a playback_state frame after every
                                             command and change of state

One replay session at a time: starting another replaces it. A slow WebSocket subscriber is handled as
on the live socket (its own queue; oldest frames dropped and counted) while the replay is paced; at
``max`` the replay instead waits for its subscribers, so a consumer gets everything as fast as it takes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path

import duckdb
from fastapi import APIRouter, HTTPException, WebSocket
from pydantic import BaseModel, ConfigDict, Field

from battsim.recordings.player import Player, ReplayError, ReplaySource, parse_speed
from battsim.recordings.query import RecordingBusyError
from battsim.recordings.recording import NotARecordingError
from battsim.service.broadcast import Broadcaster, MessageFrame, ReadingFilter
from battsim.service.routes_query import UnknownRecordingError, find_recording

log = logging.getLogger(__name__)

API = "/api/v1"
# Longest single wait of the pacing task, so it notices a command or a loop restart promptly anyway.
MAX_WAIT_S = 0.5
# At max speed the replay takes only as many frames as fit in half of every subscriber's queue room
# (frames and bytes), so none is dropped; it waits this long between looks when there is no room.
BACKPRESSURE_WAIT_S = 0.002

LiveConnection = Callable[[Path], "duckdb.DuckDBPyConnection | None"]


class StartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    recording: str = Field(description="File name in the data directory (without .duckdb) or run id.",
                           examples=["outage-week"])
    speed: float | str = Field(1.0, description="Virtual seconds per wall second, 0.01-100000, or \"max\".",
                               examples=[60, "max"])
    from_: str | None = Field(None, alias="from", description="ISO 8601, or an offset from the start such as "
                                                                "\"+2h\" (default: the start).")
    to: str | None = Field(None, description="End, exclusive: ISO 8601, \"+6h\" from the start or \"-30m\" from "
                                             "the end (default: the end of the recording).")
    battery_ids: list[str] = Field(default_factory=list, description="Only these batteries (default all).")
    site_ids: list[str] = Field(default_factory=list, description="Only these sites; with battery_ids, both apply.")
    loop: bool = False
    start_paused: bool = False


class SeekRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: str = Field(description="ISO 8601, or an offset from the recording's start (\"+3h\") or end (\"-1h\").",
                      examples=["2026-01-01T14:00+07:00", "+3h"])


class SpeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speed: float | str = Field(description="0.01-100000, or \"max\".", examples=[3600])


def _invalid(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, naming the field."""
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}])


class ReplaySession:
    """One player, the task that paces it, and the state frames it publishes."""

    _ids = itertools.count(1)

    def __init__(self, recording_id: str, source: ReplaySource, player: Player, broadcaster: Broadcaster):
        self.id = next(self._ids)
        self.recording_id, self.source, self.player, self.broadcaster = recording_id, source, player, broadcaster
        self._wake = asyncio.Event()
        self._seen_changes = player.changes
        self._frame_bytes = 1  # the size of the last frame sent, to judge the subscribers' room in bytes
        self.task = asyncio.create_task(self._run(), name=f"replay-{self.id}")

    def status(self) -> dict:
        return {"session": self.id, "recording": self.recording_id, "run_id": self.source.run_id,
                "batteries": len(self.player.window.keys), **self.player.status().as_dict()}

    async def current_status(self) -> dict:
        # Off the event loop: the player's lock may be held by a poll waiting on DuckDB.
        return await asyncio.to_thread(self.status)

    async def publish_state(self) -> dict:
        self._seen_changes = self.player.changes
        status = await self.current_status()
        self.broadcaster.publish(MessageFrame({"type": "playback_state", **status}))
        return status

    async def command(self, action: Callable[[], None]) -> dict:
        """Run a player command off the event loop (it may query DuckDB), then tell everyone."""
        await asyncio.to_thread(action)
        self._wake.set()
        return await self.publish_state()

    async def _run(self) -> None:
        player = self.player
        try:
            while True:
                batch = 4096
                if math.isinf(player.speed) and self.broadcaster.subscribers:
                    batch = await self._room()
                frames = await asyncio.to_thread(player.poll, batch)
                for frame in frames:
                    self.broadcaster.publish(frame)
                    self._frame_bytes = len(frame.payload)
                if player.changes != self._seen_changes:
                    await self.publish_state()
                if player.state == "ended":
                    return
                delay = await asyncio.to_thread(player.wall_delay)
                if delay > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), min(delay, MAX_WAIT_S))
                    except TimeoutError:
                        pass
        except (duckdb.Error, OSError) as error:
            # e.g. the live recording it followed was closed: end the replay and say why.
            log.warning("replay %s of %s failed: %s", self.id, self.recording_id, error)
            player.stop(f"error: {error}")
            await self.publish_state()
        finally:
            await asyncio.to_thread(self._close)

    async def _room(self) -> int:
        """Frames every subscriber can take without dropping any (waits until it is at least one)."""
        while True:
            room = min((min(s.max_frames // 2 - len(s.queue), (s.max_bytes // 2 - s.queued_bytes) // self._frame_bytes)
                        for s in self.broadcaster.subscribers.values()), default=4096)
            if room > 0:
                return room
            await asyncio.sleep(BACKPRESSURE_WAIT_S)

    def _close(self) -> None:
        self.player.close()
        self.source.close()

    async def stop(self) -> dict:
        status = await self.command(self.player.stop)
        await self.task
        return status


def replay_router(data_dir: str | Path, live_connection: LiveConnection | None = None,
                  broadcaster: Broadcaster | None = None) -> APIRouter:
    """Recordings in ``data_dir`` and the replay session.

    ``live_connection(path)`` returns a new DuckDB cursor on a recording this process is writing (None
    otherwise), which the replay closes when done: DuckDB lets one process hold a file read-write, so
    such a recording is read through its writer's connection, up to what has been committed.
    """
    data_dir = Path(data_dir)
    broadcaster = broadcaster or Broadcaster()
    router = APIRouter(tags=["replay"])
    current: dict[str, ReplaySession] = {}

    def open_source(recording_id: str) -> tuple[Path, ReplaySource]:
        try:
            path = find_recording(data_dir, recording_id)
        except ValueError as error:
            raise _invalid("recording", str(error)) from None
        except UnknownRecordingError as error:
            raise HTTPException(404, detail=str(error)) from None
        return path, _source(path, recording_id)

    def _source(path: Path, recording_id: str) -> ReplaySource:
        connection = live_connection(path) if live_connection else None
        try:
            if connection is not None:
                # A cursor made for us: closed with the source, so it does not outlive the replay.
                return ReplaySource.from_connection(connection, path.stem, owned=True)
            return ReplaySource.open(path)
        except RecordingBusyError:
            raise HTTPException(409, detail=f"recording {recording_id!r} is being written by another process; "
                                            "replay it through the server that records it") from None
        except (NotARecordingError, FileNotFoundError):
            raise HTTPException(404, detail=f"{recording_id!r} is not a battsim recording") from None

    def describe(path: Path, source: ReplaySource) -> dict:
        info = source.info.as_dict()
        return {"id": path.stem, "file": path.name, "size_bytes": path.stat().st_size, **info}

    def session() -> ReplaySession:
        if "session" not in current:
            raise HTTPException(404, detail=f"no replay session; start one with POST {API}/replay/start")
        return current["session"]

    # ------------------------------------------------------------------------------------ recordings
    @router.get(f"{API}/recordings", summary="Recordings in the data directory")
    def recordings() -> list[dict]:
        listed = []
        for path in sorted(data_dir.glob("*.duckdb")):
            try:
                source = _source(path, path.stem)
            except HTTPException as error:
                if error.status_code == 409:
                    listed.append({"id": path.stem, "file": path.name, "status": "busy", "detail": error.detail})
                continue  # not a recording: not listed
            try:
                listed.append(describe(path, source))
            finally:
                source.close()
        return listed

    @router.get(f"{API}/recordings/{{recording_id}}", summary="One recording, with its sites and batteries",
                responses={404: {"description": "No such recording"}, 409: {"description": "Written elsewhere"}})
    def recording(recording_id: str) -> dict:
        path, source = open_source(recording_id)
        try:
            return {**describe(path, source), "battery_ids": source.battery_ids}
        finally:
            source.close()

    # ------------------------------------------------------------------------------------ replay
    @router.post(f"{API}/replay/start", summary="Replay a recording (replaces the current replay)",
                 responses={404: {"description": "No such recording"}, 422: {"description": "Bad window, "
                            "filter or speed (the detail names the field)"}})
    async def start(request: StartRequest) -> dict:
        try:
            speed = parse_speed(request.speed, "speed")
        except ReplayError as error:
            raise _invalid(error.field, error.message) from None
        path, source = await asyncio.to_thread(open_source, request.recording)
        try:
            window = source.window(request.from_, request.to, request.battery_ids, request.site_ids)
            player = await asyncio.to_thread(Player, source, window, speed, request.loop, request.start_paused)
        except ReplayError as error:
            source.close()
            raise _invalid(error.field, error.message) from None
        except BaseException:
            source.close()
            raise
        if "session" in current:
            await current.pop("session").stop()
        current["session"] = replay = ReplaySession(path.stem, source, player, broadcaster)
        return await replay.publish_state()

    def control(name: str, summary: str, act: Callable[[Player], None]) -> None:
        @router.post(f"{API}/replay/{name}", summary=summary, name=f"replay_{name}",
                     responses={404: {"description": "No replay session"}})
        async def endpoint() -> dict:
            replay = session()
            return await replay.command(lambda: act(replay.player))

    control("pause", "Pause the replay", Player.pause)
    control("resume", "Resume the replay", Player.resume)

    @router.post(f"{API}/replay/stop", summary="Stop the replay", responses={404: {"description": "No replay session"}})
    async def stop() -> dict:
        return await session().stop()

    @router.post(f"{API}/replay/seek", summary="Jump to a time; the next frame holds each battery's last value",
                 responses={404: {"description": "No replay session"}, 422: {"description": "Outside the window"}})
    async def seek(request: SeekRequest) -> dict:
        replay = session()
        try:
            return await replay.command(lambda: replay.player.seek(request.time))
        except ReplayError as error:
            raise _invalid("time", error.message) from None

    @router.post(f"{API}/replay/speed", summary="Change the replay speed",
                 responses={404: {"description": "No replay session"}, 422: {"description": "Out of range"}})
    async def speed(request: SpeedRequest) -> dict:
        replay = session()
        try:
            return await replay.command(lambda: replay.player.set_speed(request.speed))
        except ReplayError as error:
            raise _invalid("speed", error.message) from None

    @router.get(f"{API}/replay/status", summary="The replay's state, position and requested/achieved speed")
    async def status() -> dict:
        if "session" not in current:
            return {"state": "idle"}
        return await current["session"].current_status()

    @router.websocket(f"{API}/ws/replay")
    async def replay_socket(websocket: WebSocket):
        """The replay's telemetry frames (as the live socket's) and playback_state frames."""
        await websocket.accept()
        replay = current.get("session")
        greeting = {"type": "playback_state", **(await replay.current_status() if replay else {"state": "idle"})}
        await broadcaster.serve(websocket, ReadingFilter(), greeting)

    return router
