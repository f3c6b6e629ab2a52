"""Recent history of a recording as telemetry frames, for a dashboard that opens on a running simulation.

    frames = recent_frames(source, window_s=3600, max_frames=600)

The last ``window_s`` of virtual time before the recording's last tick, thinned to at most
``max_frames`` ticks evenly spaced (every k-th tick, the last one always kept), each encoded as the
live socket's ``telemetry`` frame, so a page can feed them to the same code that draws live frames.
The encoding is the replay's (DuckDB turns the rows into JSON; no Python runs per reading).
"""

from __future__ import annotations

import math

import duckdb

from battsim.recordings.replay import ReplaySource
from battsim.wire import iso_utc

# The window a dashboard asks for by default, and the most it may ask for.
DEFAULT_WINDOW_S = 3600.0
MAX_WINDOW_S = 7 * 86_400.0
# Frames at most: about a chart's width in points (the dashboard keeps 600 per series).
DEFAULT_MAX_FRAMES = 600
MAX_FRAMES = 5_000


def recent_frames(source: ReplaySource, con: duckdb.DuckDBPyConnection, window_s: float = DEFAULT_WINDOW_S,
                  max_frames: int = DEFAULT_MAX_FRAMES) -> list[bytes]:
    """Telemetry frames of the last ``window_s`` seconds (oldest first), at most ``max_frames`` of them."""
    source.refresh_end(con)
    if source.end_us is None:
        return []
    interval_us = source.interval_s * 1_000_000
    ticks = max(1, int(window_s * 1e6) // interval_us)
    stride = max(1, math.ceil(ticks / max_frames))
    last_us = source.end_us
    lo_us = max(source.start_us, last_us - (ticks - 1) * interval_us)
    window = source.window()
    chunk = source.sampled(con, window, lo_us, last_us + 1, origin_us=last_us, stride_us=stride * interval_us)
    frames = []
    for i in range(len(chunk.tick_us)):
        a, b = chunk.byte_at[i], chunk.byte_at[i + 1]
        frames.append(b'{"type":"telemetry","seq":null,"sim_time":"%s","data":[' % iso_utc(int(chunk.tick_us[i])).encode()
                      + bytes(chunk.data[a:b - 1]) + b"]}")
    return frames
