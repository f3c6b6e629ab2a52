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

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa

from battsim.engine.battery import MODE_NAMES
from battsim.engine.clock import PacedClock
from battsim.engine.world import EPOCH, to_unix_us
from battsim.recordings.format import (
    NotARecordingError,
    check_recording,
    connect_read_only,
    reading,
)
from battsim.scale import shardset
from battsim.timeparse import parse_duration
from battsim.wire import WIRE_NUMBERS, iso_utc

SPEED_MIN = 0.01
SPEED_MAX = 100_000.0
# Times a replay may be asked for: the years a recording can hold (a run starts in 1970-2199, the
# timelines' range in scenarios/timeline.py) and offsets up to the longest run, 100 years; beyond
# them Python's datetime (years 1-9999) overflows.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
LATEST_INSTANT = datetime(2299, 12, 31, 23, 59, 59, tzinfo=ZoneInfo("UTC"))
# Rows per chunk read from DuckDB: large enough that a query's fixed cost is small against its rows,
# small enough that the chunks in memory (one playing, two being read) stay a few tens of MB.
CHUNK_ROWS = 65_536
# DuckDB memory of a replay's own (read-only) database instance.
REPLAY_MEMORY_LIMIT = "128MB"
# Chunks read at once (one worker and cursor each), so both cores encode while frames go out.
FETCH_WORKERS = 2
# When paced, a chunk holds about this much wall time of playback (and at most CHUNK_ROWS).
PACED_CHUNK_WALL_S = 0.25
# Wall seconds over which the achieved speed is measured.
ACHIEVED_WINDOW_S = 2.0
# At the live edge of a recording still being written, a replay looks for new commits this often. The
# live recorder commits about once a second (service/live.py RECORD_EVERY_S), which dominates the latency.
FOLLOW_POLL_S = 0.1
# States in which frames go out as they fall due.
MOVING = ("playing", "following")



class UnreadableRecordingError(NotARecordingError):
    """A battsim recording holding values this version cannot read (a run dated past datetime's range)."""


class ReplayError(ValueError):
    """Bad replay input; ``field`` names what was wrong (a CLI flag or request field is derived from it)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ------------------------------------------------------------------------------------------ input
def parse_speed(value: str | float, field: str = "speed") -> float:
    """A speed factor between 0.01 and 100000, or ``max`` (as fast as possible, ``math.inf``)."""
    if isinstance(value, str):
        if value.strip().lower() == "max":
            return math.inf
        try:
            value = float(value)
        except ValueError:
            raise ReplayError(field, f"{_quoted(value)} is not a number or 'max'") from None
    if math.isnan(value):
        raise ReplayError(field, f"not a number; give {SPEED_MIN:g}-{SPEED_MAX:g} or 'max'")
    if math.isinf(value) and value > 0:
        return math.inf
    if not SPEED_MIN <= value <= SPEED_MAX:
        raise ReplayError(field, f"{value:g} is outside {SPEED_MIN:g}-{SPEED_MAX:g} (or 'max')")
    return float(value)


def parse_instant(value: str | datetime, field: str, start: datetime, end: datetime | None,
                  zone: ZoneInfo) -> datetime:
    """An ISO 8601 time (read in ``zone`` when it has no offset), ``+2h`` from the start, or ``-30m`` from the end.

    An offset is a duration of :mod:`battsim.timeparse` (``+1d6h``, ``+90min``, ``+1.5h``, ``-PT30M``), up to
    100 years; times are in the years 1970-2299.
    """
    if isinstance(value, datetime):
        return _in_range(value if value.tzinfo else value.replace(tzinfo=zone), field)
    text = value.strip()
    if text[:1] in ("+", "-"):
        try:
            seconds = parse_duration(text[1:])
        except ValueError as error:
            raise ReplayError(field, f"offset {error}") from None
        if text[0] == "+":
            return _in_range(start + timedelta(seconds=seconds), field)
        if end is None:
            raise ReplayError(field, "the recording has no readings yet to count back from")
        return _in_range(end - timedelta(seconds=seconds), field)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReplayError(field, f"{_quoted(value)} is not an ISO 8601 time (2026-01-01T14:00+07:00) "
                                 "or an offset from the start (+2h, +1d6h) or the end (-30m)") from None
    return _in_range(moment if moment.tzinfo else moment.replace(tzinfo=zone), field)


def _in_range(moment: datetime, field: str) -> datetime:
    # Compared as instants, never converted: a time at the edge of datetime's range with a far offset
    # (9999-12-31T23:00-14:00) would overflow in the conversion.
    if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise ReplayError(field, f"{moment.isoformat()} is outside {EARLIEST_INSTANT.isoformat()} to "
                                 f"{LATEST_INSTANT.isoformat()}")
    return moment


def _cut(text: str) -> str:
    """Text for an error message, cut short: a message never repeats a long input."""
    return text if len(text) <= 60 else text[:57] + "..."


def _quoted(value) -> str:
    return _cut(repr(value))


def _instant(timestamp_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(timestamp_us))


# ------------------------------------------------------------------------------------------ source
@dataclass(frozen=True)
class RecordingInfo:
    """What a listing shows about a recording."""

    run_id: str
    preset: str | None
    status: str  # complete | running | incomplete
    start: datetime
    end: datetime | None  # the last reading written (None: none yet)
    interval_s: int
    readings: int
    batteries: int
    sites: list[str]
    timezone: str

    def as_dict(self) -> dict:
        span_s = (self.end - self.start).total_seconds() + self.interval_s if self.end else 0.0
        return {
            "run_id": self.run_id, "preset": self.preset, "status": self.status,
            "start": self.start.isoformat(), "end": self.end.isoformat() if self.end else None,
            "span_s": span_s, "interval_s": self.interval_s, "readings": self.readings,
            "batteries": self.batteries, "sites": self.sites, "timezone": self.timezone,
        }


@dataclass(frozen=True)
class Window:
    """What to play: readings with ``start_us <= timestamp < end_us`` of the selected batteries."""

    start_us: int
    end_us: int | None  # None: to the end of what is recorded (and, while recording, what comes)
    keys: np.ndarray  # battery_key of each selected battery, ascending
    everything: bool  # no battery or site filter

    @property
    def start(self) -> datetime:
        return _instant(self.start_us)

    @property
    def end(self) -> datetime | None:
        return None if self.end_us is None else _instant(self.end_us)


@dataclass
class TickChunk:
    """Consecutive ticks of encoded readings: tick ``i`` is ``data[byte_at[i]:byte_at[i+1]]``."""

    lo_us: int  # the time range the chunk covers, [lo, hi)
    hi_us: int
    tick_us: np.ndarray
    tick_rows: np.ndarray
    byte_at: list[int]
    sim_time: list[str]
    data: memoryview
    next: int = 0

    @property
    def exhausted(self) -> bool:
        return self.next >= len(self.tick_us)


class ReplaySource:
    """A recording to read readings from: a file opened read-only, or an owner's open connection."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, owned: bool, name: str, live: bool):
        self._connection = connection
        self._owned = owned
        self.name = name
        with reading([name]):  # a damaged block is the file's fault: DamagedRecordingError naming it
            self._read_metadata(live)

    def _read_metadata(self, live: bool) -> None:
        connection, name = self._connection, self.name
        check_recording(connection, name)
        row = connection.execute(
            'SELECT id, preset, status, start, "end", interval_s, readings FROM runs LIMIT 1').fetchall()
        run_id, preset, status, start, planned_end, interval_s, readings = row[0]
        for label, moment in (("start", start), ("end", planned_end)):
            # DuckDB hands back a time beyond Python's datetime (a run started at 9999-12-31T23:00-14:00 by an
            # older battsim) as text.
            if moment is not None and not (isinstance(moment, datetime) and EARLIEST_INSTANT <= moment <= LATEST_INSTANT):
                raise UnreadableRecordingError(f"{name}: the run's {label} ({_quoted(str(moment))}) is outside the years "
                                         "this battsim reads (1970-2299)")
        if not isinstance(interval_s, int) or interval_s < 1:
            raise UnreadableRecordingError(f"{name}: the run's interval ({_quoted(interval_s)}) is not a whole number of "
                                     "seconds above 0")
        # Only a writer holding the file can have a run that is really running; opened from disk
        # (which needs no writer) a run still marked running was cut short.
        self.live = live and status == "running"
        self.writer_gone = False  # the writer stopped and closed the cursor this source reads through
        self.status = "incomplete" if status == "running" and not self.live else status
        self.run_id, self.preset, self.interval_s = run_id, preset, int(interval_s)
        self.start_us = to_unix_us(start)
        batteries = connection.execute(
            "SELECT b.battery_key, b.battery_id, b.site_id, b.string_id, s.timezone FROM batteries b "
            "LEFT JOIN sites s USING (site_id) ORDER BY b.battery_key").fetchall()
        self.battery_keys = np.array([b[0] for b in batteries], dtype=np.int64)
        self.battery_ids = [b[1] for b in batteries]
        self.battery_site = [b[2] for b in batteries]
        self.battery_string = [b[3] for b in batteries]
        self.site_ids = list(dict.fromkeys(self.battery_site))
        self.string_ids = list(dict.fromkeys(self.battery_string))
        zones = {b[4] for b in batteries if b[4]}
        self.timezone = ZoneInfo(zones.pop()) if len(zones) == 1 else ZoneInfo("UTC")
        self._prefix = [""] * (int(self.battery_keys.max()) + 1 if batteries else 0)
        for key, battery_id, site_id, string_id, _ in batteries:
            self._prefix[key] = (f'{{"battery_id":{json.dumps(battery_id)},"site_id":{json.dumps(site_id)},'
                                 f'"string_id":{json.dumps(string_id)},"timestamp":"')
        self._end_hint_us = to_unix_us(planned_end) if planned_end is not None and readings else None
        self.end_us = self._last_timestamp_us(self._end_hint_us)

    # -------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path) -> ReplaySource:
        """Open a recording file read-only (it must not be being written by another process)."""
        if Path(path).is_dir():  # a shard set (battsim run --workers): its parts as one recording
            connection = shardset.open_shard_set(path)
        else:
            connection = connect_read_only(
                path, busy="being written by another process; replay it through the server that records it")
        # DuckDB keeps the blocks it has read cached up to its memory limit (80 % of RAM by default):
        # a replay reads each block once, so cap it and memory stays flat for a recording of any size.
        connection.execute(f"SET memory_limit = '{REPLAY_MEMORY_LIMIT}'")
        # Parallelism comes from the read-ahead workers, each query on its worker's own thread (a chunk
        # is a row group or two, which DuckDB scans on one thread anyway); DuckDB threads of its own
        # would only crowd out the thread that sends frames on time.
        connection.execute("SET threads = 1")
        try:
            return cls(connection, owned=True, name=str(path), live=False)
        except BaseException:
            connection.close()
            raise

    @classmethod
    def from_connection(cls, connection: duckdb.DuckDBPyConnection, name: str, owned: bool = False) -> ReplaySource:
        """Read through the connection of the process that writes the recording (a cursor of it per thread).

        ``owned``: the connection was made for this source (a fresh cursor), and is closed with it.
        """
        cursor = connection if owned else connection.cursor()
        try:
            return cls(cursor, owned=True, name=name, live=True)
        except BaseException:
            cursor.close()
            raise

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self._connection.cursor()

    def close(self) -> None:
        if self._owned:
            self._connection.close()

    # -------------------------------------------------------------------------------- metadata
    def _last_timestamp_us(self, hint_us: int | None, con: duckdb.DuckDBPyConnection | None = None) -> int | None:
        """The last tick written. The hint (run's end, or where playback is) keeps the scan to the tail:
        DuckDB skips row groups by their min/max, and readings are appended in time order."""
        con = con or self._connection
        query = "SELECT epoch_us(max(timestamp)) FROM reading_samples"
        if hint_us is not None:
            found = con.execute(query + " WHERE timestamp >= $lo", {"lo": _instant(hint_us)}).fetchall()
            if found[0][0] is not None:
                return int(found[0][0])
        found = con.execute(query).fetchall()
        return None if found[0][0] is None else int(found[0][0])

    def still_written(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Whether the run is still being recorded: its writer has neither marked it nor closed our cursor.

        When it has marked it, the end is read once more, so that the last commits are played too.
        """
        if self.live:
            try:
                status = con.execute("SELECT status FROM runs LIMIT 1").fetchall()[0][0]
                if status != "running":
                    self.refresh_end(con)
                    self.live, self.status = False, status
            except duckdb.ConnectionException:  # the writer closed the readers' cursors: it has stopped
                self.live, self.writer_gone = False, True
        return self.live

    def refresh_end(self, con: duckdb.DuckDBPyConnection | None = None) -> int | None:
        """Re-read how far a recording still being written has got."""
        if self.live:
            found = self._last_timestamp_us(self.end_us, con)
            # Workers refresh concurrently: an older answer arriving late must not move the end back.
            if found is not None and (self.end_us is None or found > self.end_us):
                self.end_us = found
        return self.end_us

    @property
    def span_end(self) -> datetime | None:
        """Where the recorded span ends: one interval after the last reading (what ``-30m`` counts back from)."""
        return None if self.end_us is None else _instant(self.end_us + self.interval_s * 1_000_000)

    @property
    def info(self) -> RecordingInfo:
        row = self._connection.execute("SELECT readings FROM runs LIMIT 1").fetchall()
        readings = int(row[0][0] or 0)
        end = None if self.end_us is None else _instant(self.end_us)
        return RecordingInfo(self.run_id, self.preset, self.status, _instant(self.start_us),
                             end, self.interval_s, readings, len(self.battery_ids), self.site_ids, str(self.timezone))

    # -------------------------------------------------------------------------------- selection
    def window(self, start: str | datetime | None = None, end: str | datetime | None = None,
               batteries: Sequence[str] = (), sites: Sequence[str] = (), strings: Sequence[str] = ()) -> Window:
        """Validate what to play. Fields named in errors: ``from``, ``to``, ``battery_ids``, ``site_ids``,
        ``string_ids``; the filters given all apply (a battery must be in each)."""
        run_start, last = _instant(self.start_us), self.span_end
        begin = parse_instant(start, "from", run_start, last, self.timezone) if start is not None else run_start
        finish = parse_instant(end, "to", run_start, last, self.timezone) if end is not None else None
        if finish is not None and finish <= begin:
            raise ReplayError("to", f"{self._shown(finish)} is not after from ({self._shown(begin)})")
        if last is not None and begin >= last and not self.live:
            raise ReplayError("from", f"{self._shown(begin)} is after the recording's last reading "
                                      f"({self._shown(_instant(self.end_us))})")
        if finish is not None and finish <= run_start:
            raise ReplayError("to", f"{self._shown(finish)} is not after the recording's start "
                                    f"({self._shown(run_start)})")
        keep = np.ones(len(self.battery_ids), dtype=bool)
        if batteries:
            unknown = sorted(set(batteries) - set(self.battery_ids))
            if unknown:
                raise ReplayError("battery_ids", f"unknown {', '.join(map(_cut, unknown[:5]))}"
                                  f"{' …' if len(unknown) > 5 else ''}; this recording has "
                                  f"{_examples(self.battery_ids)}")
            keep &= np.isin(self.battery_ids, list(batteries))
        if sites:
            unknown = sorted(set(sites) - set(self.site_ids))
            if unknown:
                raise ReplayError("site_ids", f"unknown {', '.join(map(_cut, unknown[:5]))}; "
                                              f"sites: {', '.join(self.site_ids)}")
            keep &= np.isin(self.battery_site, list(sites))
        if strings:
            unknown = sorted(set(strings) - set(self.string_ids))
            if unknown:
                raise ReplayError("string_ids", f"unknown {', '.join(map(_cut, unknown[:5]))}"
                                  f"{' …' if len(unknown) > 5 else ''}; strings: {_listed(self.string_ids)}")
            keep &= np.isin(self.battery_string, list(strings))
        if not keep.any():
            raise ReplayError("battery_ids", "no battery is in every filter given (battery, site, string)")
        if finish is not None and last is not None and finish > last and not self.live:
            finish = last  # a finished recording grows no more: a later end plays (and loops) to its end
        # Before the first reading there is nothing to wait for: start the clock there.
        begin_us = max(to_unix_us(begin), self.start_us)
        return Window(begin_us, None if finish is None else to_unix_us(finish),
                      np.sort(self.battery_keys[keep]), everything=bool(keep.all()))

    def _shown(self, moment: datetime) -> str:
        """A time in messages: in the sites' zone, as a user gives times without an offset."""
        return moment.astimezone(self.timezone).isoformat()

    # -------------------------------------------------------------------------------- reading
    def _encoded(self, window: Window, where: str, tail: str = "") -> str:
        """The query that turns stored rows into wire JSON, each reading ending in a comma."""
        numbers = []
        for index, (name, decimals) in enumerate(WIRE_NUMBERS):
            scale = f"1e{decimals}"
            # numpy's np.round (multiply, round half to even, divide), so values equal the live frames';
            # written with fixed decimals (24.10), which DuckDB formats twice as fast as shortest (24.1).
            separator = '",' if index == 0 else ","  # the first one closes the timestamp string
            numbers.append(f"'{separator}\"{name}\":', coalesce(CASE WHEN isfinite({name}) THEN "
                           f"(round_even({name}::DOUBLE * {scale}, 0) / {scale})::DECIMAL(18, {decimals})::VARCHAR END, 'null')")
            if name == "soh_pct":
                numbers.append("',\"mode\":\"', $modes[mode + 1], '\"'")
        selected = "" if window.everything else " AND list_contains($keys, battery_key)"
        return (f"SELECT epoch_us(timestamp) AS t, battery_key AS k, concat($prefix[battery_key + 1], "
                f"strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S+00:00'), {', '.join(numbers)}, '}},') AS j "
                f"FROM (SELECT * FROM reading_samples WHERE {where}{selected}{tail})")

    def _params(self, window: Window, **values) -> dict:
        params = {"prefix": self._prefix, "modes": list(MODE_NAMES), **values}
        if not window.everything:
            params["keys"] = window.keys.tolist()
        return params

    def fetch(self, con: duckdb.DuckDBPyConnection, window: Window, lo_us: int, hi_us: int) -> TickChunk:
        """Encoded ticks with ``lo <= timestamp < hi``, in time then battery order."""
        query = self._encoded(window, "timestamp >= $lo AND timestamp < $hi")
        params = self._params(window, lo=_instant(lo_us), hi=_instant(hi_us))
        table = con.sql(query, params=params).to_arrow_table()
        t, k = table.column("t").to_numpy(), table.column("k").to_numpy()
        if not _in_order(t, k):
            # Readings are appended tick by tick, so a scan returns them in order; if a file was
            # written otherwise, sort (rarely, and only this chunk).
            table = con.sql(query + " ORDER BY t, k", params=params).to_arrow_table()
            t = table.column("t").to_numpy()
        return _chunk(lo_us, hi_us, t, table.column("j"))

    def sampled(self, con: duckdb.DuckDBPyConnection, window: Window, lo_us: int, hi_us: int, origin_us: int,
                stride_us: int) -> TickChunk:
        """Encoded ticks in ``[lo, hi)`` whose time is a whole number of ``stride`` from ``origin`` (every k-th tick)."""
        query = self._encoded(window, "timestamp >= $lo AND timestamp < $hi "
                                      "AND (epoch_us(timestamp) - $origin) % $stride = 0") + " ORDER BY t, k"
        params = self._params(window, lo=_instant(lo_us), hi=_instant(hi_us), origin=origin_us, stride=stride_us)
        table = con.sql(query, params=params).to_arrow_table()
        return _chunk(lo_us, hi_us, table.column("t").to_numpy(), table.column("j"))

    def snapshot(self, con: duckdb.DuckDBPyConnection, window: Window, at_us: int) -> TickChunk:
        """Each selected battery's last reading at or before ``at_us`` (and not before the window), as one tick."""
        lookback_us = 2 * self.interval_s * 1_000_000
        while True:
            lo_us = max(window.start_us, at_us - lookback_us)
            query = self._encoded(
                window, "timestamp >= $lo AND timestamp <= $at",
                " QUALIFY row_number() OVER (PARTITION BY battery_key ORDER BY timestamp DESC) = 1") + " ORDER BY k"
            table = con.sql(query, params=self._params(window, lo=_instant(lo_us), at=_instant(at_us))).to_arrow_table()
            if table.num_rows >= len(window.keys) or lo_us == window.start_us:
                break
            lookback_us *= 64
        t = np.full(table.num_rows, at_us, dtype=np.int64)  # one frame, stamped with the seek time
        return _chunk(at_us, at_us + 1, t, table.column("j"))

    def next_timestamp_us(self, con: duckdb.DuckDBPyConnection, window: Window, after_us: int) -> int | None:
        """The first tick at or after ``after_us`` (to jump over a gap in the recording)."""
        found = con.execute("SELECT epoch_us(min(timestamp)) FROM reading_samples "
                            "WHERE timestamp >= $lo", {"lo": _instant(after_us)}).fetchall()
        return None if found[0][0] is None else int(found[0][0])


def _listed(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f", … ({len(ids)} in all)" if len(ids) > 5 else "")


def _examples(ids: list[str]) -> str:
    return f"{len(ids)} batteries ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})"


def _in_order(t: np.ndarray, k: np.ndarray) -> bool:
    if len(t) < 2:
        return True
    dt = np.diff(t)
    return bool(np.all((dt > 0) | ((dt == 0) & (np.diff(k.astype(np.int32)) > 0))))


def _chunk(lo_us: int, hi_us: int, t: np.ndarray, column: pa.ChunkedArray) -> TickChunk:
    """Split one query's rows at tick boundaries; the JSON stays in the Arrow buffer it came in."""
    if len(t) == 0:
        return TickChunk(lo_us, hi_us, t, t, [0], [], memoryview(b""))
    array = column.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if pa.types.is_large_string(array.type) else np.int32)
    offsets = offsets[array.offset: array.offset + len(array) + 1]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(t)) + 1, [len(t)]])
    tick_us = t[starts[:-1]]
    if np.all(tick_us % 1_000_000 == 0):
        sim_time = np.char.add(np.datetime_as_string(tick_us.astype("datetime64[us]"), unit="s"), "+00:00").tolist()
    else:
        sim_time = [iso_utc(us) for us in tick_us.tolist()]
    return TickChunk(lo_us, hi_us, tick_us, np.diff(starts), offsets[starts].tolist(), sim_time,
                     memoryview(data_buffer))


# ------------------------------------------------------------------------------------------ reading ahead
_NOT_READY = object()


class ReadAhead:
    """The chunks of a window, read ahead and in parallel by a pool of workers (each with its own
    cursor: DuckDB runs each query on one core when it spans a row group or two), handed out in order.

    Chunks are planned back to back; when one comes back with a different end than planned (the
    window's or the written end cut it short, or it jumped a gap in the recording), the chunks planned
    after it are dropped and planning resumes from where it really ended.
    """

    def __init__(self, source: ReplaySource, window: Window, chunk_ticks: Callable[[], int],
                 workers: int = FETCH_WORKERS):
        self.source, self.window, self._chunk_ticks = source, window, chunk_ticks
        self._depth = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="battsim-replay")
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._queue: deque[tuple[Future, int]] = deque()
        self._preloaded: tuple[int, Future, int] | None = None
        self._plan_lo = window.start_us
        self.resume_us = window.start_us  # where the chunks handed out so far end
        self.exhausted = False

    # -------------------------------------------------------------------------------- workers
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if not hasattr(self._local, "cursor"):
            self._local.cursor = self.source.cursor()
            self._cursors.append(self._local.cursor)
        return self._local.cursor

    def run(self, query: Callable, *args):
        """Run ``query(cursor, *args)`` on a worker and wait for it."""
        return self._pool.submit(lambda: query(self._cursor(), *args)).result()

    def _fetch(self, lo_us: int, hi_us: int) -> TickChunk | None:
        """On a worker: the first non-empty chunk from ``lo`` (None: nothing more, for now)."""
        cursor, source, window = self._cursor(), self.source, self.window
        end = source.refresh_end(cursor)
        limit = end + 1 if end is not None else lo_us
        if window.end_us is not None:
            limit = min(limit, window.end_us)
        while lo_us < limit:
            chunk = source.fetch(cursor, window, lo_us, min(hi_us, limit))
            if len(chunk.tick_us):
                return chunk
            following = source.next_timestamp_us(cursor, window, hi_us)  # a gap in the recording: jump it
            if following is None:
                return None
            lo_us, hi_us = following, following + (hi_us - lo_us)
        return None

    # -------------------------------------------------------------------------------- planning
    def _span_us(self) -> int:
        return self._chunk_ticks() * self.source.interval_s * 1_000_000

    def _static_limit(self) -> int | None:
        """Where planning can stop for good (None: a recording still written may grow)."""
        limits = [] if self.window.end_us is None else [self.window.end_us]
        if not self.source.live and self.source.end_us is not None:
            limits.append(self.source.end_us + 1)
        if not self.source.live and self.source.end_us is None:
            limits.append(self.window.start_us)  # an empty recording
        return min(limits) if limits else None

    def _refill(self) -> None:
        limit = self._static_limit()
        while len(self._queue) < self._depth and (limit is None or self._plan_lo < limit):
            hi_us = self._plan_lo + self._span_us()
            self._queue.append((self._pool.submit(self._fetch, self._plan_lo, hi_us), hi_us))
            self._plan_lo = hi_us

    def _discard(self) -> None:
        for future, _ in self._queue:
            future.cancel()  # one already running finishes on its worker; its chunk is dropped
        self._queue.clear()

    def start(self, lo_us: int) -> None:
        """Read from ``lo`` on (after a seek, a loop restart, or to look again at a growing recording)."""
        self._discard()
        self.exhausted = False
        self._plan_lo = self.resume_us = lo_us
        if self._preloaded is not None and self._preloaded[0] == lo_us:
            _, future, hi_us = self._preloaded
            self._queue.append((future, hi_us))
            self._plan_lo = hi_us
        self._preloaded = None
        self._refill()

    def preload(self, lo_us: int) -> None:
        """Start reading the chunk at ``lo`` for a later :meth:`start` there (a loop's restart)."""
        if self._preloaded is None:
            hi_us = lo_us + self._span_us()
            self._preloaded = (lo_us, self._pool.submit(self._fetch, lo_us, hi_us), hi_us)

    def next(self, wait: bool = True):
        """The next chunk; None when there are no more; ``_NOT_READY`` if ``wait`` is False and it is still read."""
        if not self._queue:
            self._refill()
        if not self._queue:
            self.exhausted = True
            return None
        future, planned_hi = self._queue[0]
        if not wait and not future.done():
            return _NOT_READY
        self._queue.popleft()
        chunk = future.result()
        if chunk is None:
            self.exhausted = True
            self._discard()
            return None
        if chunk.hi_us != planned_hi:
            self._discard()
            self._plan_lo = chunk.hi_us
        self.resume_us = chunk.hi_us
        self._refill()
        return chunk

    def close(self) -> None:
        self._discard()
        if self._preloaded is not None:
            self._preloaded[1].cancel()
        self._pool.shutdown(wait=True)
        for cursor in self._cursors:
            cursor.close()


# ------------------------------------------------------------------------------------------ player
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
        self._initial_speed = speed = parse_speed(speed)
        self._chunk_rows = chunk_rows
        self._ticks_per_chunk = max(1, chunk_rows // len(window.keys))
        self._reader = ReadAhead(source, window, self._chunk_ticks)
        self._chunk: TickChunk | None = None
        self._reader.start(window.start_us)
        # Preroll: the first chunk is in memory before the clock starts, so tick 0 is not late by a query.
        self._upcoming_us()
        self._clock = PacedClock(0.0, speed=speed, paused=paused, wall_clock=wall_clock)
        self._snapshot: TickChunk | None = None
        self.state = "paused" if paused else "playing"
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
        if math.isinf(self._clock.speed) or self.state in ("ended", "following"):
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
        clock = getattr(self, "_clock", None)  # the preroll runs before the clock exists
        speed = self._initial_speed if clock is None else clock.speed
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
            if chunk is _NOT_READY:
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
            while self._steps and self.state == "paused":
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
                if self.state == "following":
                    self._set_state("playing")  # something new was committed
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
                self._set_state("ended", "live run stopped")
                return False
            # The recording may have grown since the last chunk was read ahead.
            self._restart(self._reader.resume_us)
            if self._upcoming_us() is not None:
                return True
            window_open = self.window.end_us is None or self._reader.resume_us < self.window.end_us
            if written and window_open and not self.loop:
                self._set_state("following")
                return False
        if not self.loop:
            window_open = self.window.end_us is None or self._reader.resume_us < self.window.end_us
            # A recording that was being written when the replay began ended because its run stopped.
            self._set_state("ended", "live run stopped" if self._began_live and window_open else "finished")
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
            if self._snapshot is not None or (self._steps and self.state == "paused"):
                return 0.0
            if self.state == "following":
                return FOLLOW_POLL_S
            if self.state != "playing":
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
                self._clock.pause(self._reached() if self.state == "playing" else self._position_v())
                self._set_state("paused")

    def step(self) -> None:
        """Send the next frame (at the next poll) and stay paused on it; only while paused."""
        with self._lock:
            if self.state != "paused":
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
            if self.state == "ended":
                self._clock.pause(self._virtual(at_us) if self._last_us is not None else 0.0)
                self._set_state("paused")
            self._samples.clear()
            self.changes += 1


    def resume(self) -> None:
        with self._lock:
            if self.state == "paused":
                self._clock.resume()
                self._set_state("playing")

    def set_speed(self, speed: float | str) -> None:
        with self._lock:
            speed = parse_speed(speed)
            self._clock.set_speed(speed, self._reached())
            self._samples.clear()
            self.changes += 1

    def seek(self, moment: str | datetime) -> None:
        """Play from ``moment``; the next frame holds each selected battery's last reading at or before it."""
        with self._lock:
            at_us = to_unix_us(parse_instant(moment, "seek", _instant(self.source.start_us), self.source.span_end,
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
            if self.state == "ended":  # seeking a finished replay brings it back, paused at the new time
                self._clock.pause(self._virtual(at_us))
                self._set_state("paused")
            elif self.state == "following":  # it has the sought frame to send, and plays on from there
                self._set_state("playing")
            self._clock.seek(self._virtual(at_us))
            self._samples.clear()
            self.changes += 1

    def stop(self, reason: str = "stopped") -> None:
        with self._lock:
            self._set_state("ended", reason)

    def close(self) -> None:
        """Stop and release the cursor and the worker thread."""
        with self._lock:
            if self.state != "ended":
                self._set_state("ended", "stopped")
            self._chunk = None
            self._reader.close()

    def _set_state(self, state: str, reason: str | None = None) -> None:
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
            return _instant(self.window.start_us + round(self._position_v() * 1e6))

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
            elif self.state == "paused":
                achieved = frames_per_s = 0.0
            return PlaybackStatus(self.state, self.position(), self._clock.speed, achieved, frames_per_s, self.window.start,
                                  self.window.end, self.loop, self.loops, self.frames, self.readings,
                                  self.ended_reason)
