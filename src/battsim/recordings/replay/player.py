"""The player: a window of a recording played back as telemetry frames on a paced clock, with pause, step,
seek, loop and speed, and following a recording still being written."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from battsim.engine.clock import PacedClock
from battsim.engine.world import to_unix_us
from battsim.recordings.replay.input import ReplayError, instant, parse_instant, parse_speed
from battsim.recordings.replay.readahead import NOT_READY, ReadAhead
from battsim.recordings.replay.source import ReplaySource, Window
from battsim.recordings.replay.wire_sql import TickChunk
from battsim.wire import iso_utc

# Rows per chunk read from DuckDB: large enough that a query's fixed cost is small against its rows,
# small enough that the chunks in memory (one playing, two being read) stay a few tens of MB.
CHUNK_ROWS = 65_536
# When paced, a chunk holds about this much wall time of playback (and at most CHUNK_ROWS).
PACED_CHUNK_WALL_S = 0.25
# Wall seconds over which the achieved speed is measured.
ACHIEVED_WINDOW_S = 2.0
# At the live edge of a recording still being written, a replay looks for new commits this often. The
# live recorder commits about once a second (service/live.py RECORD_EVERY_S), which dominates the latency.
FOLLOW_POLL_S = 0.1


class PlayerState(StrEnum):
    """Where playback is; a str, so ``state == "ended"`` and JSON see the plain name."""

    PLAYING = "playing"
    FOLLOWING = "following"  # at the live edge of a recording still written, waiting for commits
    PAUSED = "paused"
    ENDED = "ended"


# States in which frames go out as they fall due.
MOVING = (PlayerState.PLAYING, PlayerState.FOLLOWING)

@dataclass(frozen=True, slots=True)
class TelemetryFrame:
    """One tick's readings as the wire frame ``{"type": "telemetry", "seq", "sim_time", "data"}``."""

    seq: int
    timestamp_us: int
    readings: int
    payload: bytes

    def text(self, reading_filter=None) -> str:
        """The frame as text (the :class:`battsim.service.broadcast.Frame` protocol; the session filters)."""
        return self.payload.decode()


@dataclass(frozen=True)
class PlaybackStatus:
    state: str  # playing | following (at the live edge, waiting for commits) | paused | ended
    position: datetime  # the virtual time playback has reached
    speed: float  # requested (inf: as fast as possible)
    achieved_speed: float | None  # measured over the last ~2 s of wall time; None until measurable
    achieved_frames_per_s: float | None  # frames sent per wall second over the same span
    start: datetime
    end: datetime | None
    loop: bool
    loops: int
    frames: int
    readings: int
    ended_reason: str | None  # finished | stopped | what went wrong

    def as_dict(self) -> dict:
        def speed(x):
            return "max" if x is not None and math.isinf(x) else x
        return {
            "state": self.state, "position": self.position.isoformat(), "speed": speed(self.speed),
            "achieved_speed": None if self.achieved_speed is None else round(self.achieved_speed, 3),
            "achieved_frames_per_s": None if self.achieved_frames_per_s is None else round(self.achieved_frames_per_s, 1),
            "from": self.start.isoformat(), "to": self.end.isoformat() if self.end else None,
            "loop": self.loop, "loops": self.loops, "frames": self.frames, "readings": self.readings,
            "ended_reason": self.ended_reason,
        }


class Player:
    """Plays a window of a recording. Thread-safe: one thread may poll while others send commands."""

    def __init__(self, source: ReplaySource, window: Window, speed: float = 1.0, loop: bool = False,
                 paused: bool = False, wall_clock: Callable[[], float] = time.monotonic,
                 chunk_rows: int = CHUNK_ROWS):
        self.source, self.window, self.loop = source, window, loop
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._chunk_rows = chunk_rows
        self._ticks_per_chunk = max(1, chunk_rows // len(window.keys))
        # Held at 0 until the preroll is done: the first chunk is in memory before the clock runs, so
        # tick 0 is not late by a query.
        self._clock = PacedClock(0.0, speed=parse_speed(speed), paused=True, wall_clock=wall_clock)
        self._reader = ReadAhead(source, window, self._chunk_ticks)
        self._chunk: TickChunk | None = None
        self._reader.start(window.start_us)
        self._upcoming_us()
        if not paused:
            self._clock.resume()
        self._snapshot: TickChunk | None = None
        self.state = PlayerState.PAUSED if paused else PlayerState.PLAYING
        self.ended_reason: str | None = None
        # seq numbers every frame sent, across loops and seeks (it never restarts; sim_time does), so a
        # consumer can tell a frame it missed from a loop.
        self.seq = 0
        self.frames = 0
        self.readings = 0
        self.loops = 0
        self.changes = 0  # counts state changes, so a driver can tell the world after each one
        self._steps = 0  # frames asked for by step() while paused
        self._began_live = source.live
        self._last_us: int | None = None
        self._samples: deque[tuple[float, float, int]] = deque()  # (wall, virtual, frames)

    @property
    def speed(self) -> float:
        """The requested speed (``math.inf``: as fast as possible)."""
        return self._clock.speed

    # -------------------------------------------------------------------------------- time
    def _virtual(self, timestamp_us: int) -> float:
        return (timestamp_us - self.window.start_us) / 1e6

    def _end_us(self) -> int | None:
        """Where the window ends in virtual time: ``to``, else one interval after the last tick."""
        if self.window.end_us is not None:
            return self.window.end_us
        end = self.source.end_us
        return None if end is None else end + self.source.interval_s * 1_000_000

    def _position_v(self) -> float:
        """Virtual time reached: the clock when playback keeps up with it, else the last frame sent."""
        last = 0.0 if self._last_us is None else self._virtual(self._last_us)
        if math.isinf(self._clock.speed) or self.state in (PlayerState.ENDED, PlayerState.FOLLOWING):
            return last  # following: nothing later is written yet
        now = self._clock.now()
        upcoming = self._upcoming_us(fetch=False)
        if upcoming is not None and self._due_in(self._virtual(upcoming)) == 0:
            return last  # behind: frames are due that have not gone out
        end_us = self._end_us()
        return min(now, self._virtual(end_us)) if end_us is not None else now

    # -------------------------------------------------------------------------------- chunks
    def _chunk_ticks(self) -> int:
        """Ticks per chunk: as many as fit ``chunk_rows``, and when paced only about PACED_CHUNK_WALL_S
        of playback, so that reading the next chunk is a short burst beside the frames going out."""
        speed = self._clock.speed
        if math.isinf(speed):
            return self._ticks_per_chunk
        paced = math.ceil(speed * PACED_CHUNK_WALL_S / self.source.interval_s)
        return max(1, min(self._ticks_per_chunk, paced))

    def _upcoming_us(self, fetch: bool = True) -> int | None:
        """The time of the next tick to send, loading the next chunk if needed (None: none left).

        With ``fetch=False`` it never waits on DuckDB: None also means "not read yet".
        """
        while self._chunk is None or self._chunk.exhausted:
            if self._reader.exhausted:
                return None
            chunk = self._reader.next(wait=fetch)
            if chunk is NOT_READY:
                return None
            if chunk is None:
                if self.loop:
                    self._reader.preload(self.window.start_us)
                return None
            self._chunk = chunk
        return int(self._chunk.tick_us[self._chunk.next])

    def _take(self, chunk: TickChunk, sim_time: str | None = None) -> TelemetryFrame:
        i = chunk.next
        chunk.next += 1
        a, b = chunk.byte_at[i], chunk.byte_at[i + 1]
        header = b'{"type":"telemetry","seq":%d,"sim_time":"%s","data":[' % (
            self.seq, (sim_time or chunk.sim_time[i]).encode())
        frame = TelemetryFrame(self.seq, int(chunk.tick_us[i]), int(chunk.tick_rows[i]),
                               header + chunk.data[a:b - 1] + b"]}")  # b-1 drops the last reading's comma
        self.seq += 1
        self.frames += 1
        self.readings += frame.readings
        return frame

    def _restart(self, lo_us: int) -> None:
        """Play on from ``lo``: what was read ahead is dropped."""
        self._chunk = None
        self._reader.start(lo_us)

    # -------------------------------------------------------------------------------- playing
    def poll(self, max_frames: int = 4096) -> list[TelemetryFrame]:
        """The frames due now, in order; at most ``max_frames``, and about a chunk's worth of readings,
        so memory stays bounded when many are due (at max speed, call again at once)."""
        with self._lock:
            frames: list[TelemetryFrame] = []
            readings = 0
            if self._snapshot is not None:
                snapshot, self._snapshot = self._snapshot, None
                if len(snapshot.tick_us):
                    frames.append(self._take(snapshot, iso_utc(snapshot.lo_us)))
            while self._steps and self.state == PlayerState.PAUSED:
                self._steps -= 1
                upcoming = self._upcoming_us()
                if upcoming is None and self.source.live:  # the recording may have grown
                    self._restart(self._reader.resume_us)
                    upcoming = self._upcoming_us()
                if upcoming is None:
                    self._steps = 0
                    break
                frames.append(self._take(self._chunk))
                self._last_us = upcoming
                self._clock.seek(self._virtual(upcoming))  # paused on the frame just sent
            while self.state in MOVING and len(frames) < max_frames and readings < self._chunk_rows:
                upcoming = self._upcoming_us()
                if upcoming is None:
                    if not self._at_end():
                        break
                    continue
                if self._due_in(self._virtual(upcoming)) > 0:
                    break
                if self.state == PlayerState.FOLLOWING:
                    self._set_state(PlayerState.PLAYING)  # something new was committed
                frames.append(self._take(self._chunk))
                readings += frames[-1].readings
                self._last_us = upcoming
            self._sample()
            return frames

    def _at_end(self) -> bool:
        """Nothing left to play: end, or loop (True: go on polling)."""
        if self.source.live:
            # Asked before looking for more, so that what the writer committed before it stopped is played.
            written = self._reader.run(self.source.still_written)
            if self.source.writer_gone:
                self._set_state(PlayerState.ENDED, "live run stopped")
                return False
            # The recording may have grown since the last chunk was read ahead.
            self._restart(self._reader.resume_us)
            if self._upcoming_us() is not None:
                return True
            window_open = self.window.end_us is None or self._reader.resume_us < self.window.end_us
            if written and window_open and not self.loop:
                self._set_state(PlayerState.FOLLOWING)
                return False
        if not self.loop:
            window_open = self.window.end_us is None or self._reader.resume_us < self.window.end_us
            # A recording that was being written when the replay began ended because its run stopped.
            self._set_state(PlayerState.ENDED, "live run stopped" if self._began_live and window_open else "finished")
            return False
        end_us = self._end_us()
        now = self._clock.now()
        if end_us is None:
            # An empty recording being written: nothing to loop over yet.
            return False
        if self._due_in(self._virtual(end_us)) > 0:
            return False  # the last tick is out; the loop restarts when the window's time is up
        overshoot = max(0.0, now - self._virtual(end_us))
        self.loops += 1
        self._restart(self.window.start_us)
        self._last_us = None
        self._samples.clear()
        # Keep the phase: a loop restart late by a poll interval starts that much into the window.
        self._clock.seek(0.0 if math.isinf(overshoot) else overshoot)
        self.changes += 1
        return True

    def wall_delay(self) -> float:
        """Wall seconds until the next frame is due: 0 if one is due now, ``inf`` if paused or ended."""
        with self._lock:
            if self._snapshot is not None or (self._steps and self.state == PlayerState.PAUSED):
                return 0.0
            if self.state == PlayerState.FOLLOWING:
                return FOLLOW_POLL_S
            if self.state != PlayerState.PLAYING:
                return math.inf
            upcoming = self._upcoming_us()
            if upcoming is None:
                end_us = self._end_us()
                if not self.loop or end_us is None:
                    return 0.0 if not self.loop else 0.5
                return self._due_in(self._virtual(end_us))
            return self._due_in(self._virtual(upcoming))

    def _due_in(self, virtual_s: float) -> float:
        """Wall seconds until ``virtual_s``; within a microsecond (the timestamps' resolution) is now,
        so that float rounding in the clock's arithmetic never leaves a tick a hair short of due."""
        if self._clock.now() >= virtual_s - 1e-6:
            return 0.0
        return self._clock.wall_delay_until(virtual_s)

    # -------------------------------------------------------------------------------- commands
    def pause(self) -> None:
        with self._lock:
            if self.state in MOVING:
                self._clock.pause(self._reached() if self.state == PlayerState.PLAYING else self._position_v())
                self._set_state(PlayerState.PAUSED)

    def step(self) -> None:
        """Send the next frame (at the next poll) and stay paused on it; only while paused."""
        with self._lock:
            if self.state != PlayerState.PAUSED:
                raise ReplayError("step", f"the replay is {self.state}; pause it first (step plays one frame "
                                          "while paused)")
            self._steps += 1
            self.changes += 1

    def set_window(self, start: str | datetime | None = None, end: str | datetime | None = None,
                   loop: bool | None = None) -> None:
        """Change the window (an A-B loop) while playing: the same batteries from ``start`` to ``end``.

        Playback goes on where it is if that is inside the new window, else from its start.
        """
        with self._lock:
            window = self.source.window(self.window.start if start is None else start,
                                        self.window.end if end is None else end)
            window = Window(window.start_us, window.end_us, self.window.keys, self.window.everything)
            at_us = self.window.start_us + round(self._position_v() * 1e6)
            self.window = self._reader.window = window
            if loop is not None:
                self.loop = loop
            end_us = self._end_us()
            if window.start_us <= at_us and (end_us is None or at_us < end_us) and self._last_us is not None:
                self._restart(self._last_us + 1)
                self._clock.seek(self._virtual(at_us))
            else:
                self._restart(window.start_us)
                self._last_us = None
                self._clock.seek(0.0)
            self._upcoming_us()
            if self.state == PlayerState.ENDED:
                self._clock.pause(self._virtual(at_us) if self._last_us is not None else 0.0)
                self._set_state(PlayerState.PAUSED)
            self._samples.clear()
            self.changes += 1


    def resume(self) -> None:
        with self._lock:
            if self.state == PlayerState.PAUSED:
                self._clock.resume()
                self._set_state(PlayerState.PLAYING)

    def set_speed(self, speed: float | str) -> None:
        with self._lock:
            speed = parse_speed(speed)
            self._clock.set_speed(speed, self._reached())
            self._samples.clear()
            self.changes += 1

    def seek(self, moment: str | datetime) -> None:
        """Play from ``moment``; the next frame holds each selected battery's last reading at or before it."""
        with self._lock:
            at_us = to_unix_us(parse_instant(moment, "seek", instant(self.source.start_us), self.source.span_end,
                                             self.source.timezone))
            end_us = self._end_us()
            if at_us < self.window.start_us or (end_us is not None and at_us >= end_us):
                end = "the end of the recording" if end_us is None else iso_utc(end_us)
                raise ReplayError("seek", f"{iso_utc(at_us)} is outside the replay window "
                                          f"[{iso_utc(self.window.start_us)}, {end})")
            self._snapshot = self._reader.run(self.source.snapshot, self.window, at_us)
            self._restart(at_us + 1)
            self._upcoming_us()  # what follows is in memory before the clock is re-anchored
            self._last_us = at_us
            if self.state == PlayerState.ENDED:  # seeking a finished replay brings it back, paused at the new time
                self._clock.pause(self._virtual(at_us))
                self._set_state(PlayerState.PAUSED)
            elif self.state == PlayerState.FOLLOWING:  # it has the sought frame to send, and plays on from there
                self._set_state(PlayerState.PLAYING)
            self._clock.seek(self._virtual(at_us))
            self._samples.clear()
            self.changes += 1

    def stop(self, reason: str = "stopped") -> None:
        with self._lock:
            self._set_state(PlayerState.ENDED, reason)

    def close(self) -> None:
        """Stop and release the cursor and the worker thread."""
        with self._lock:
            if self.state != PlayerState.ENDED:
                self._set_state(PlayerState.ENDED, "stopped")
            self._chunk = None
            self._reader.close()

    def _set_state(self, state: PlayerState, reason: str | None = None) -> None:
        if state != self.state:
            self.state = state
            self.ended_reason = reason
            self.changes += 1
            self._samples.clear()

    def _reached(self) -> float | None:
        """At max speed the clock is at infinity: re-anchor where playback actually is."""
        return self._position_v() if math.isinf(self._clock.speed) else None

    # -------------------------------------------------------------------------------- status
    def position(self) -> datetime:
        """The virtual time playback has reached (what a clock frame says)."""
        with self._lock:
            return instant(self.window.start_us + round(self._position_v() * 1e6))

    def _sample(self) -> None:
        if self.state not in MOVING:
            return
        wall = self._wall_clock()
        self._samples.append((wall, self._position_v(), self.frames))
        while len(self._samples) > 2 and wall - self._samples[1][0] >= ACHIEVED_WINDOW_S:
            self._samples.popleft()

    def status(self) -> PlaybackStatus:
        with self._lock:
            achieved = frames_per_s = None
            if self.state in MOVING and len(self._samples) >= 2:
                (w0, v0, f0), (w1, v1, f1) = self._samples[0], self._samples[-1]
                if w1 - w0 >= 0.05:
                    achieved, frames_per_s = (v1 - v0) / (w1 - w0), (f1 - f0) / (w1 - w0)
            elif self.state == PlayerState.PAUSED:
                achieved = frames_per_s = 0.0
            return PlaybackStatus(self.state, self.position(), self._clock.speed, achieved, frames_per_s, self.window.start,
                                  self.window.end, self.loop, self.loops, self.frames, self.readings,
                                  self.ended_reason)
