"""``battsim replay FILE``: a recording's readings as telemetry JSON lines on stdout, paced or as fast as possible.

    battsim replay year.duckdb --speed 3600 --from 2026-04-10T00:00+07:00 --to +2d --site BKK_DC1 | my-ingest
    battsim replay outage.duckdb --speed max > frames.jsonl

Each line is one tick, the same frame the live WebSocket sends:
``{"type":"telemetry","seq":0,"sim_time":"...","data":[reading, ...]}``, with times as every command shows
them (ISO 8601 in UTC, ``2026-01-01T00:00:00+00:00``: :mod:`battsim.recordings.presentation`). Ctrl-C (or the
reader going away) ends it cleanly after a whole line; a summary goes to stderr.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from battsim.recordings.format import NotARecordingError, RecordingBusyError, reading, verify_recording
from battsim.recordings.replay import Player, ReplayError, ReplaySource, parse_speed
from battsim.service.terminal import console, fail

# The flag each player field comes from.
_FLAGS = {"from": "--from", "to": "--to", "battery_ids": "--battery", "site_ids": "--site", "string_ids": "--string",
          "speed": "--speed"}
MAX_DELAY_S = 3600.0
# Longest single wait, so a loop restart or a live recording's growth is noticed while idle.
_MAX_WAIT_S = 0.5
# Replay writes telemetry frames, which are JSON; the other formats are for readings at rest (query, export).
REPLAY_FORMATS = ("json",)


def replay(
    file: Annotated[Path, typer.Argument(help="The recording (.duckdb) to play.", show_default=False)],
    speed: Annotated[str, typer.Option(help="Virtual seconds per wall second, 0.01-100000, or 'max'.")] = "1",
    start: Annotated[str | None, typer.Option(
        "--from", help="Start: ISO 8601 (no offset = the sites' local time) or an offset from the start, e.g. +2h.",
        show_default=False)] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="End (exclusive): ISO 8601, +offset from the start, or -offset from the end, e.g. -30m.",
        show_default=False)] = None,
    battery: Annotated[list[str] | None, typer.Option(help="Only this battery (repeatable).",
                                                          show_default=False)] = None,
    site: Annotated[list[str] | None, typer.Option(help="Only this site (repeatable); with --battery, "
                                                             "batteries in both.", show_default=False)] = None,
    string: Annotated[list[str] | None, typer.Option(help="Only this string (repeatable); every filter given applies.",
                                                          show_default=False)] = None,
    loop: Annotated[bool, typer.Option(help="Start again from --from after --to (seq keeps counting across loops; "
                                            "sim_time starts again).")] = False,
    delay: Annotated[float, typer.Option(help="Wall seconds to wait before the first frame, 0-3600.")] = 0.0,
    output_format: Annotated[str, typer.Option("--format", help="json: one telemetry frame per line.")] = "json",
) -> None:
    """Replay a recording as telemetry JSON lines on stdout (the WebSocket's frames), paced like the original."""
    if output_format not in REPLAY_FORMATS:
        fail("--format", f"{output_format!r} is not one of {', '.join(REPLAY_FORMATS)} (replay writes telemetry frames "
                         "as JSON lines; for readings as a table, CSV or Parquet: battsim query or battsim export)")
    try:
        speed_x = parse_speed(speed, "speed")
    except ReplayError as error:
        fail("--speed", error.message)
    if not 0 <= delay <= MAX_DELAY_S:
        fail("--delay", f"{delay:g} is outside 0-{MAX_DELAY_S:g} seconds")
    try:
        verify_recording(file)
        with reading([file]):
            source = ReplaySource.open(file)
    except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
        fail("FILE", escape(str(error)))
    try:
        try:
            window = source.window(start, end, battery or (), site or (), string or ())
        except ReplayError as error:
            fail(_FLAGS.get(error.field, error.field), error.message)
        # A delay: the player waits paused (its first chunk read meanwhile), then its clock starts.
        player = Player(source, window, speed=speed_x, loop=loop, paused=delay > 0)
        if delay > 0 and not _wait_interruptibly(delay):
            player.close()
            return
        player.resume()
        began = time.perf_counter()
        try:
            with reading([file]):
                _play(player, math.isinf(speed_x))
        except NotARecordingError as error:  # a damaged block met while playing
            fail("FILE", escape(str(error)))
        finally:
            player.close()
        wall_s = time.perf_counter() - began
        console.print(f"replayed {player.readings:,} readings in {player.frames:,} frames, {wall_s:.2f} s"
                      f" ({player.readings / wall_s if wall_s else 0:,.0f} readings/s)"
                      + (f", {player.loops} loops" if player.loops else ""))
    finally:
        source.close()


def _wait_interruptibly(seconds: float) -> bool:
    """Sleep ``seconds``; False if Ctrl-C came first."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        return not interrupted.wait(seconds)
    finally:
        signal.signal(signal.SIGINT, previous)


def _play(player: Player, flat_out: bool) -> None:
    """Write frames as they fall due. Ctrl-C only raises a flag, checked between frames, so the
    output always ends with a whole line."""
    out = sys.stdout.buffer
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        while player.state != "ended" and not interrupted.is_set():
            for frame in player.poll():
                out.write(frame.payload)
                out.write(b"\n")
                if interrupted.is_set():
                    break
            if not flat_out:
                out.flush()  # a paced frame is due now, not when the buffer fills
            delay = player.wall_delay()
            if delay > 0 and player.state != "ended":
                interrupted.wait(min(delay, _MAX_WAIT_S))
        out.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from complaining at exit.
        _quiet_stdout()
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
