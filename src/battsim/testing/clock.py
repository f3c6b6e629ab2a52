"""Virtual time for the code under test: step a recording tick by tick with the wall clock at each tick.

    with virtual_time(rec) as frames:
        for frame in frames:                 # datetime.now(), time.time(), time.monotonic() == frame.time
            rule.update(frame.readings)      # a polars DataFrame: that tick's readings

freezegun moves the clock to each frame's simulated instant before the frame is handed over, so a rule
that debounces on the wall clock ("above 35 °C for 10 minutes") is tested over a simulated day in
seconds. Limits, all freezegun's: the clock is frozen for the whole process, so other threads see the
frozen time too, and ``time.sleep`` still sleeps for real (nothing wakes a thread at a virtual instant);
asyncio event loops keep the real monotonic clock (``real_asyncio=True``) so they go on working, which
means ``asyncio.sleep`` and ``loop.call_later`` are not virtual: drive a coroutine from the frame loop
instead of sleeping in it. Code that took ``time.time`` by value before the freeze (``from time import
time`` at import) may keep the real one; freezegun patches the modules it finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from battsim.recordings.recording import Recording

# Readings are fetched a window of virtual time at a time, so a year's recording is never loaded whole.
WINDOW = timedelta(hours=6)


@dataclass(frozen=True)
class Frame:
    time: datetime  # the tick's simulated instant (UTC)
    readings: pl.DataFrame  # one row per jar at that tick, as the readings view has them


def _bounds(recording: Recording, start, end) -> tuple[datetime, datetime] | None:
    where, params = recording._filters(start, end, None, None, None)
    first, last = recording.connection.execute(f"SELECT min(timestamp), max(timestamp) FROM reading_samples{where}",
                                               params or None).fetchall()[0]
    return None if first is None else (first, last)


def _frames(recording: Recording, freezer, start, end, sites, batteries, strings) -> Iterator[Frame]:
    bounds = _bounds(recording, start, end)
    if bounds is None:
        return
    window_start, last = bounds
    while window_start <= last:
        window_end = min(window_start + WINDOW, last + timedelta(microseconds=1))
        chunk = recording.readings(window_start, window_end, sites, batteries, strings).collect()
        for (moment,), readings in chunk.group_by("timestamp", maintain_order=True):
            freezer.move_to(moment)
            yield Frame(moment, readings)
        window_start = window_end


@contextmanager
def virtual_time(recording: Recording, start=None, end=None, sites: list[str] | None = None,
                 batteries: list[str] | None = None, strings: list[str] | None = None) -> Iterator[Iterator[Frame]]:
    """Frames of ``recording`` (optionally ``[start, end)`` and some jars) with the clock frozen at each one.

    The clock stays frozen until the ``with`` block ends, at the last frame handed over.
    """
    from freezegun import freeze_time  # only when used: the plugin loads in every pytest session

    bounds = _bounds(recording, start, end)
    with freeze_time(bounds[0] if bounds else datetime.now(), real_asyncio=True) as freezer:
        yield _frames(recording, freezer, start, end, sites, batteries, strings)
