"""Recent history for a dashboard that opens on a running simulation (issue 16, point 4).

    GET /api/v1/history?window=1h&max_frames=600[&recording=<id>]

The last ``window`` of virtual time (default 1 h, at most 7 d; "30m", "2h", seconds) of the live
simulation's recording (or of ``recording``), as at most ``max_frames`` (default 600, at most 5,000)
telemetry frames evenly thinned, oldest first: ``{"recording", "window_s", "interval_s", "frames": [...]}``,
each frame as the live socket's (``seq`` null). A recording being written is read through its
writer's connection, up to what has been committed (about a second behind).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from battsim.recordings.history import DEFAULT_MAX_FRAMES, DEFAULT_WINDOW_S, MAX_FRAMES, MAX_WINDOW_S, recent_frames
from battsim.recordings.replay import ReplaySource
from battsim.service.app_state import LiveSessions
from battsim.service.live import DEFAULT_SLOT, Sessions
from battsim.service.routes_query import UnknownRecordingError, find_recording
from battsim.timeparse import parse_duration

API = "/api/v1"


def _invalid(field: str, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["query", field], "msg": message, "type": "value_error"}])


def _path_of(sessions: Sessions, recording: str | None) -> Path:
    if recording is None:
        session = sessions.slot(DEFAULT_SLOT).session
        if session is None:
            raise HTTPException(404, detail=f"no simulation has run; start one with POST {API}/simulation/start "
                                            "or name a recording")
        return session.recording_path
    try:
        return find_recording(sessions.data_dir, recording)
    except ValueError as error:
        raise _invalid("recording", str(error)) from None
    except UnknownRecordingError as error:
        raise HTTPException(404, detail=str(error)) from None


def _read(sessions: Sessions, path: Path, window_s: float, max_frames: int) -> bytes:
    connection = sessions.live_connection(path)
    source = (ReplaySource.from_connection(connection, path.stem, owned=True) if connection is not None
              else ReplaySource.open(path))
    cursor = source.cursor()
    try:
        frames = recent_frames(source, cursor, window_s, max_frames)
    finally:
        cursor.close()
        source.close()
    head = json.dumps({"recording": path.stem, "window_s": window_s, "interval_s": source.interval_s})[:-1]
    return head.encode() + b',"frames":[' + b",".join(frames) + b"]}"


class History(BaseModel):
    recording: str
    window_s: float
    interval_s: int
    frames: list[dict[str, Any]] = Field(description="Telemetry frames as the live socket's (`seq` null), oldest "
                                                     "first.")


router = APIRouter(tags=["history"])


# The body is encoded by hand (frames come from the recording already as JSON): the model documents it.
@router.get(f"{API}/history", summary="Recent history of the live simulation (or a recording) as telemetry frames",
            responses={200: {"model": History}})
async def history(sessions: LiveSessions,
                  window: str = Query("1h", max_length=32, description="Virtual time back from the last reading: "
                                                                      "30m, 2h, 1d or seconds; at most 7d."),
                  max_frames: int = Query(DEFAULT_MAX_FRAMES, ge=1, le=MAX_FRAMES),
                  recording: str | None = Query(None, max_length=200)) -> Response:
    try:
        window_s = parse_duration(float(window) if window.replace(".", "", 1).isdigit() else window)
    except ValueError as error:
        raise _invalid("window", f"{error}; give e.g. 30m, 1h, 1d") from None
    if window_s > MAX_WINDOW_S:
        raise _invalid("window", f"{window_s:g} s is more than 7 days")
    body = await asyncio.to_thread(_read, sessions, _path_of(sessions, recording), window_s or DEFAULT_WINDOW_S,
                                   max_frames)
    return Response(body, media_type="application/json")
