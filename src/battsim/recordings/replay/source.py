"""A recording as a source of readings: opened read-only (or through its writer's connection), its metadata,
windows of it checked, and chunks of encoded ticks fetched (:mod:`.wire_sql`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np

from battsim.engine.battery import MODE_NAMES
from battsim.engine.world import to_unix_us
from battsim.recordings.format import NotARecordingError, check_recording, connect_read_only, reading
from battsim.recordings.replay.input import (
    EARLIEST_INSTANT,
    LATEST_INSTANT,
    ReplayError,
    cut,
    instant,
    parse_instant,
    quoted,
)
from battsim.recordings.replay.wire_sql import TickChunk, encoded_query, in_order, reading_prefixes, split_ticks
from battsim.scale import shardset

# DuckDB memory of a replay's own (read-only) database instance.
REPLAY_MEMORY_LIMIT = "128MB"


class UnreadableRecordingError(NotARecordingError):
    """A battsim recording holding values this version cannot read (a run dated past datetime's range)."""


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
        return instant(self.start_us)

    @property
    def end(self) -> datetime | None:
        return None if self.end_us is None else instant(self.end_us)


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
                raise UnreadableRecordingError(f"{name}: the run's {label} ({quoted(str(moment))}) is outside the years "
                                         "this battsim reads (1970-2299)")
        if not isinstance(interval_s, int) or interval_s < 1:
            raise UnreadableRecordingError(f"{name}: the run's interval ({quoted(interval_s)}) is not a whole number of "
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
        self._prefix = reading_prefixes([b[:4] for b in batteries])
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
            found = con.execute(query + " WHERE timestamp >= $lo", {"lo": instant(hint_us)}).fetchall()
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
        return None if self.end_us is None else instant(self.end_us + self.interval_s * 1_000_000)

    @property
    def info(self) -> RecordingInfo:
        row = self._connection.execute("SELECT readings FROM runs LIMIT 1").fetchall()
        readings = int(row[0][0] or 0)
        end = None if self.end_us is None else instant(self.end_us)
        return RecordingInfo(self.run_id, self.preset, self.status, instant(self.start_us),
                             end, self.interval_s, readings, len(self.battery_ids), self.site_ids, str(self.timezone))

    # -------------------------------------------------------------------------------- selection
    def window(self, start: str | datetime | None = None, end: str | datetime | None = None,
               batteries: Sequence[str] = (), sites: Sequence[str] = (), strings: Sequence[str] = ()) -> Window:
        """Validate what to play. Fields named in errors: ``from``, ``to``, ``battery_ids``, ``site_ids``,
        ``string_ids``; the filters given all apply (a battery must be in each)."""
        run_start, last = instant(self.start_us), self.span_end
        begin = parse_instant(start, "from", run_start, last, self.timezone) if start is not None else run_start
        finish = parse_instant(end, "to", run_start, last, self.timezone) if end is not None else None
        if finish is not None and finish <= begin:
            raise ReplayError("to", f"{self._shown(finish)} is not after from ({self._shown(begin)})")
        if last is not None and begin >= last and not self.live:
            raise ReplayError("from", f"{self._shown(begin)} is after the recording's last reading "
                                      f"({self._shown(instant(self.end_us))})")
        if finish is not None and finish <= run_start:
            raise ReplayError("to", f"{self._shown(finish)} is not after the recording's start "
                                    f"({self._shown(run_start)})")
        keep = np.ones(len(self.battery_ids), dtype=bool)
        filters = (
            ("battery_ids", batteries, self.battery_ids, self.battery_ids,
             f"this recording has {_examples(self.battery_ids)}"),
            ("site_ids", sites, self.site_ids, self.battery_site, f"sites: {_listed(self.site_ids)}"),
            ("string_ids", strings, self.string_ids, self.battery_string, f"strings: {_listed(self.string_ids)}"),
        )
        for field, given, known, of_battery, listing in filters:
            if not given:
                continue
            unknown = sorted(set(given) - set(known))
            if unknown:
                raise ReplayError(field, f"unknown {', '.join(map(cut, unknown[:5]))}"
                                         f"{' …' if len(unknown) > 5 else ''}; {listing}")
            keep &= np.isin(of_battery, list(given))
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

    def _params(self, window: Window, **values) -> dict:
        params = {"prefix": self._prefix, "modes": list(MODE_NAMES), **values}
        if not window.everything:
            params["keys"] = window.keys.tolist()
        return params

    def fetch(self, con: duckdb.DuckDBPyConnection, window: Window, lo_us: int, hi_us: int) -> TickChunk:
        """Encoded ticks with ``lo <= timestamp < hi``, in time then battery order."""
        query = encoded_query(window.everything, "timestamp >= $lo AND timestamp < $hi")
        params = self._params(window, lo=instant(lo_us), hi=instant(hi_us))
        table = con.sql(query, params=params).to_arrow_table()
        t, k = table.column("t").to_numpy(), table.column("k").to_numpy()
        if not in_order(t, k):
            # Readings are appended tick by tick, so a scan returns them in order; if a file was
            # written otherwise, sort (rarely, and only this chunk).
            table = con.sql(query + " ORDER BY t, k", params=params).to_arrow_table()
            t = table.column("t").to_numpy()
        return split_ticks(lo_us, hi_us, t, table.column("j"))

    def sampled(self, con: duckdb.DuckDBPyConnection, window: Window, lo_us: int, hi_us: int, origin_us: int,
                stride_us: int) -> TickChunk:
        """Encoded ticks in ``[lo, hi)`` whose time is a whole number of ``stride`` from ``origin`` (every k-th tick)."""
        query = encoded_query(window.everything, "timestamp >= $lo AND timestamp < $hi "
                                      "AND (epoch_us(timestamp) - $origin) % $stride = 0") + " ORDER BY t, k"
        params = self._params(window, lo=instant(lo_us), hi=instant(hi_us), origin=origin_us, stride=stride_us)
        table = con.sql(query, params=params).to_arrow_table()
        return split_ticks(lo_us, hi_us, table.column("t").to_numpy(), table.column("j"))

    def snapshot(self, con: duckdb.DuckDBPyConnection, window: Window, at_us: int) -> TickChunk:
        """Each selected battery's last reading at or before ``at_us`` (and not before the window), as one tick."""
        lookback_us = 2 * self.interval_s * 1_000_000
        while True:
            lo_us = max(window.start_us, at_us - lookback_us)
            query = encoded_query(
                window.everything, "timestamp >= $lo AND timestamp <= $at",
                " QUALIFY row_number() OVER (PARTITION BY battery_key ORDER BY timestamp DESC) = 1") + " ORDER BY k"
            table = con.sql(query, params=self._params(window, lo=instant(lo_us), at=instant(at_us))).to_arrow_table()
            if table.num_rows >= len(window.keys) or lo_us == window.start_us:
                break
            lookback_us *= 64
        t = np.full(table.num_rows, at_us, dtype=np.int64)  # one frame, stamped with the seek time
        return split_ticks(at_us, at_us + 1, t, table.column("j"))

    def next_timestamp_us(self, con: duckdb.DuckDBPyConnection, window: Window, after_us: int) -> int | None:
        """The first tick at or after ``after_us`` (to jump over a gap in the recording)."""
        found = con.execute("SELECT epoch_us(min(timestamp)) FROM reading_samples "
                            "WHERE timestamp >= $lo", {"lo": instant(after_us)}).fetchall()
        return None if found[0][0] is None else int(found[0][0])


def _listed(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (f", … ({len(ids)} in all)" if len(ids) > 5 else "")


def _examples(ids: list[str]) -> str:
    return f"{len(ids)} batteries ({', '.join(ids[:3])}{', …' if len(ids) > 3 else ''})"
