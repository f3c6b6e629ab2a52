"""Reading a recording from Python: runs, readings and events as polars DataFrames.

    from battsim.recordings import open_recording
    with open_recording("year.duckdb") as rec:
        hot = rec.readings(sites=["BKK_DC1"], start="2026-04-01", end="2026-05-01").collect()

Readings come back lazily (a polars LazyFrame over a DuckDB query) so a year of the full fleet is
never loaded whole unless asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from pydantic import ValidationError

from battsim.recordings import views
from battsim.recordings.format import DamagedRecordingError, NotARecordingError, check_recording, open_error
from battsim.recordings.run_config import RunConfig
from battsim.scale import shardset
from battsim.scale.manifest import CONFIG_NAME

__all__ = ["NotARecordingError", "Recording", "RunMetadata", "open_recording"]


@dataclass(frozen=True)
class RunMetadata:
    id: str
    seed: int
    start: datetime
    end: datetime | None
    interval_s: int
    status: str  # complete | running | incomplete
    preset: str | None
    readings: int
    ticks: int
    version: str


class Recording:
    """An open recording file (read-only unless ``read_only=False``), or one in memory (:meth:`in_memory`)."""

    def __init__(self, path: str | Path, read_only: bool = True):
        self.path = Path(path)
        if self.path.is_dir():  # a shard set (battsim run --workers): its parts as one recording
            self.connection = shardset.open_shard_set(self.path)
            return
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such recording")
        try:
            self.connection = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as error:
            if "lock" in str(error).lower():
                raise
            raise open_error(self.path, error) from None
        try:
            check_recording(self.connection, self.path)
        except BaseException:
            self.connection.close()
            raise

    @classmethod
    def in_memory(cls, connection: duckdb.DuckDBPyConnection) -> Recording:
        """A recording held by an in-memory DuckDB ``connection`` (``path`` is None); it is gone once closed."""
        check_recording(connection, "<memory>")
        recording = cls.__new__(cls)
        recording.path, recording.connection = None, connection
        return recording

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    @property
    def config(self) -> RunConfig:
        """What the run was asked for (``runs.config``): mode, fleet, seed, interval, timelines, ..."""
        stored = self.connection.sql("SELECT config FROM runs").fetchall()[0][0]
        try:
            return RunConfig.read(stored)
        except ValidationError as error:
            if self.path.is_dir() and json.loads(stored) == {}:
                raise DamagedRecordingError(
                    f"{self.path}: the shard set's run configuration ({CONFIG_NAME}, which its manifest names) is "
                    "missing or unreadable; each part's own runs.config still holds the configuration of that part"
                ) from None
            raise DamagedRecordingError(f"{self.path}: runs.config cannot be read: {error}") from None

    @property
    def run(self) -> RunMetadata:
        row = self.connection.sql(
            'SELECT id, seed, start, "end", interval_s, status, preset, readings, ticks, version FROM runs'
        ).fetchall()[0]
        status = row[5]
        # We could open the file, so no process is writing it: a run still 'running' was cut short.
        if status == "running":
            status = "incomplete"
        return RunMetadata(row[0], row[1], row[2], row[3], row[4], status, row[6], row[7], row[8], row[9])

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        return self.connection.sql(query, params=params or None).pl()

    def readings(self, start: str | datetime | None = None, end: str | datetime | None = None,
                 sites: list[str] | None = None, batteries: list[str] | None = None,
                 strings: list[str] | None = None, columns: list[str] | None = None) -> pl.LazyFrame:
        """Readings in ``[start, end)`` for the given sites/strings/batteries, in time then jar order."""
        where, params = self._filters(start, end, sites, batteries, strings)
        selected = ", ".join(columns) if columns else "*"
        query = f"SELECT {selected} FROM readings{where} ORDER BY timestamp, battery_id"
        return self.connection.sql(query, params=params or None).pl(lazy=True)

    def events(self, start=None, end=None, sites=None, batteries=None, strings=None,
               kinds: list[str] | None = None) -> pl.DataFrame:
        where, params = self._filters(start, end, sites, batteries, strings)
        if kinds:
            where += (" AND " if where else " WHERE ") + "kind IN (SELECT unnest(?))"
            params.append(kinds)
        return self.sql(f"SELECT * FROM events{where} ORDER BY timestamp", params)

    def batteries(self) -> pl.DataFrame:
        return self.sql("SELECT * FROM batteries ORDER BY battery_key")

    # ------------------------------------------------------------------ analysis views (recordings/views.py)
    # The per-day views are lazy and narrow the scan before they aggregate: ``start``/``end`` select
    # readings (pass local midnights for whole days), sites/strings/batteries select jars.
    def daily_battery_summary(self, start=None, end=None, sites=None, batteries=None, strings=None) -> pl.LazyFrame:
        return self._per_day(views.daily_battery_summary_sql, start, end, sites, batteries, strings)

    def soh_trend(self, start=None, end=None, sites=None, batteries=None, strings=None) -> pl.LazyFrame:
        return self._per_day(views.soh_trend_sql, start, end, sites, batteries, strings)

    def time_above_temperature(self, start=None, end=None, sites=None, batteries=None, strings=None) -> pl.LazyFrame:
        return self._per_day(views.time_above_temperature_sql, start, end, sites, batteries, strings)

    def outage_autonomy(self, start=None, end=None, sites=None, strings=None) -> pl.DataFrame:
        """Outages (one row per outage and string) that started in ``[start, end)``."""
        where, params = self._filters(start, end, sites, None, strings, time_column="start")
        return self.sql(f"SELECT * FROM {self._view('outage_autonomy')}{where} ORDER BY start, string_id", params)

    def alarms(self, start=None, end=None, sites=None, batteries=None, strings=None,
               rules: list[str] | None = None) -> pl.DataFrame:
        """Alarms raised in ``[start, end)``, each with when it cleared and how long it lasted."""
        where, params = self._filters(start, end, sites, batteries, strings, time_column="raised_at")
        if rules:
            where += (" AND " if where else " WHERE ") + "rule IN (SELECT unnest(?))"
            params.append(list(rules))
        return self.sql(f"SELECT * FROM {self._view('alarms')}{where} ORDER BY raised_at, rule, battery_id", params)

    def _view(self, name: str) -> str:
        """An analysis view to select from: the file's own SQL (a file may predate the view), or, for a shard
        set, the set's view (the parts' own, which go by each part's event order)."""
        return name if shardset.shard_set_catalog(self.connection) else f"({views.view_sql(name)})"

    def _per_day(self, view_sql, start, end, sites, batteries, strings) -> pl.LazyFrame:
        when, params = self._filters(start, end, None, None, None)
        jars, jar_params = self._filters(None, None, sites, batteries, strings)
        if jars:
            when += (" AND " if when else " WHERE ") + f"battery_key IN (SELECT battery_key FROM batteries{jars})"
        source = f"(SELECT * FROM reading_samples{when})"
        query = f"SELECT * FROM ({view_sql(source=source)}) ORDER BY day, battery_id"
        return self.connection.sql(query, params=(params + jar_params) or None).pl(lazy=True)

    @staticmethod
    def _filters(start, end, sites, batteries, strings, time_column: str = "timestamp") -> tuple[str, list]:
        clauses, params = [], []
        if start is not None:
            clauses.append(f"{time_column} >= ?::TIMESTAMPTZ")
            params.append(start)
        if end is not None:
            clauses.append(f"{time_column} < ?::TIMESTAMPTZ")
            params.append(end)
        for column, values in (("site_id", sites), ("battery_id", batteries), ("string_id", strings)):
            if values:
                clauses.append(f"{column} IN (SELECT unnest(?))")
                params.append(list(values))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def open_recording(path: str | Path, read_only: bool = True) -> Recording:
    return Recording(path, read_only=read_only)
