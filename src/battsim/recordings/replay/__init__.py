"""Replay: a recording played back as telemetry frames, at any speed, with pause, seek, loop and filters.

    source = ReplaySource.open("yesterday.duckdb")
    player = Player(source, source.window(start="+2h", end="+3h", sites=["BKK_DC1"]), speed=60)
    while player.state != "ended":
        for frame in player.poll():
            send(frame.payload)                 # {"type": "telemetry", "seq", "sim_time", "data": [...]}
        time.sleep(min(player.wall_delay(), 0.5))

Readings stream from DuckDB in chunks of whole ticks (memory stays flat however long the recording),
read ahead by two worker threads and encoded to JSON inside DuckDB, so that no Python code runs per
reading: a chunk's rows come back as one Arrow string column whose data buffer *is* the
concatenated JSON, and a frame is a slice of it between two tick boundaries.

Pacing uses :class:`~battsim.engine.clock.PacedClock`: a tick is due when the clock, anchored at a
start point and re-anchored on every speed change, pause, seek and loop, reaches its virtual time;
there is no sleep per message, so waiting never accumulates drift. The player itself never sleeps:
:meth:`Player.poll` returns the frames due now and :meth:`Player.wall_delay` says how long until the
next one, so the CLI can block, the server can await, and tests can drive it with a fake clock.

A recording another process is writing cannot be opened (DuckDB allows one read-write process per
file); the owner hands its connection to :meth:`ReplaySource.from_connection` instead, and the player
then follows the file: at the live edge (everything committed so far played) it is ``following``,
looks for new commits every :data:`FOLLOW_POLL_S`, plays them as they come, and ends only when the
run is no longer being written (``ended_reason: live run stopped``) or it is stopped.
"""

from battsim.recordings.replay.input import ReplayError, parse_speed
from battsim.recordings.replay.player import CHUNK_ROWS, MOVING, PlaybackStatus, Player, TelemetryFrame
from battsim.recordings.replay.source import RecordingInfo, ReplaySource, UnreadableRecordingError, Window

__all__ = ["CHUNK_ROWS", "MOVING", "PlaybackStatus", "Player", "RecordingInfo", "ReplayError", "ReplaySource",
           "TelemetryFrame", "UnreadableRecordingError", "Window", "parse_speed"]
