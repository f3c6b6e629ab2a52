"""The recorder: a sink that writes a world's readings and events to a DuckDB recording.

Batches are converted to Arrow without copying and inserted on a writer thread (DuckDB releases
the GIL), each in its own transaction together with the events that came before it and the run's
progress, so a crash loses at most the batches not yet committed and never leaves a half-written
one. The queue to the writer is bounded, which keeps memory flat however long the run.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from battsim import __version__
from battsim.engine.battery import PROFILE_NAMES
from battsim.engine.fleet import Fleet
from battsim.engine.readings import ReadingBatch
from battsim.engine.sensors import current_full_scale_a
from battsim.engine.world import EPOCH, Event
from battsim.recordings.run_config import RunConfig
from battsim.recordings.schema import (
    FORMAT_VERSION,
    create_statements,
    ohmic_test_columns,
    reading_sample_columns,
    string_reading_columns,
)

_TIMESTAMP = pa.timestamp("us", tz="UTC")
JAR_REPLACED = "jar_replaced"  # an event the recorder also writes into the batteries table
RECORDER_MEMORY_LIMIT = "96MB"


class RecordingExistsError(FileExistsError):
    pass


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.rollback()
    except duckdb.Error:
        pass  # no transaction open, or the database refuses everything after a fatal write error


def _insert_columns(con: duckdb.DuckDBPyConnection, table: str, columns: dict) -> None:
    """Append rows given column by column, matched to ``table`` by name (its other columns NULL): one
    Arrow scan, where ``executemany`` would cost a statement per row (a 4,096-jar part's strings took 0.8 s)."""
    con.register("new_rows", pa.table(columns))
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")
    finally:
        con.unregister("new_rows")


@dataclass(frozen=True)
class RunInfo:
    seed: int
    start: datetime
    end: datetime | None
    interval_s: int
    config: RunConfig
    preset: str | None = None


def _columns_to_arrow(columns: dict[str, np.ndarray], layout: list[tuple[str, str]]) -> pa.Table:
    """Zero-copy Arrow view of a batch's columns in the table's order. A value the monitor does not have (NaN:
    a sensor dropout, a communication gap, no ohmic test or SOH trend yet) is stored as NULL, in every column:
    a reader never meets a NaN in a recording."""
    arrays, names = [], []
    for name, _ in layout:
        if name == "timestamp":
            arrays.append(pa.array(columns["timestamp_us"]).cast(_TIMESTAMP))
        else:
            column = columns[name]
            # Only a column that has a NaN pays for the NULL mask; the rest stay zero-copy.
            missing = column.dtype.kind == "f" and bool(np.isnan(column).any())
            arrays.append(pa.array(column, from_pandas=missing))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def batch_to_arrow(batch: ReadingBatch) -> pa.Table:
    return _columns_to_arrow(batch.columns, reading_sample_columns())


def string_batch_to_arrow(batch: ReadingBatch) -> pa.Table:
    return _columns_to_arrow(batch.string_columns, string_reading_columns())


def ohmic_tests_to_arrow(batch: ReadingBatch) -> pa.Table:
    return _columns_to_arrow(batch.ohmic_tests, ohmic_test_columns())


class Recorder:
    """Writes one run to one DuckDB file."""

    def __init__(self, path: str | Path, fleet: Fleet, info: RunInfo, overwrite: bool = False,
                 scenario_names: list[str] | None = None, max_pending_batches: int = 1):
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise RecordingExistsError(f"{self.path} exists; pass --overwrite to replace it")
            self.path.unlink()
            Path(str(self.path) + ".wal").unlink(missing_ok=True)
        self.run_id = uuid.uuid4().hex[:12]
        self.readings_written = 0
        self.string_readings_written = 0
        self.ohmic_tests_written = 0
        self.ticks_written = 0
        self.last_timestamp_us: int | None = None
        self._events: list[Event] = []
        # Bounded so that memory stays flat however long the run: written blocks are evicted to the file.
        self._connection = duckdb.connect(str(self.path), config={"memory_limit": RECORDER_MEMORY_LIMIT})
        try:
            self._create(fleet, info, scenario_names or [])
        except BaseException:  # e.g. the disk is full already: release the file so it can be removed
            self._connection.close()
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending_batches)
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="battsim-recorder", daemon=True)
        self._writer.start()

    # ------------------------------------------------------------------------------ set-up
    def _create(self, fleet: Fleet, info: RunInfo, scenario_names: list[str]) -> None:
        con = self._connection
        con.begin()
        for statement in create_statements():
            con.execute(statement)
        con.execute(
            'INSERT INTO runs (id, seed, config, start, "end", interval_s, status, version, format_version, preset, '
            "readings, ticks, wall_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, 0, 0, 0, ?)",
            [self.run_id, info.seed, json.dumps(info.config.as_json()), info.start, info.end, info.interval_s,
             __version__, FORMAT_VERSION, info.preset, datetime.now(UTC)],
        )
        spec = fleet.spec
        _insert_columns(con, "sites", {
            "site_key": np.arange(len(spec.sites), dtype=np.int32),
            "site_id": [s.site_id for s in spec.sites],
            "name": [s.name for s in spec.sites],
            "timezone": [s.timezone for s in spec.sites],
            "longitude_deg": [s.longitude_deg for s in spec.sites],
            "load_kw_per_string": [s.load_kw_per_string for s in spec.sites],
            "room_setpoint_c": [s.room_setpoint_c for s in spec.sites],
        })
        resistance = np.array([fleet.models[m].internal_resistance_mohm for m in fleet.battery_model])
        capacity = np.array([fleet.models[m].capacity_ah_c10 for m in fleet.battery_model])
        _insert_columns(con, "batteries", {  # installed_at, replace*: NULL
            "battery_key": pa.array(np.arange(fleet.size, dtype=np.uint16)),
            "battery_id": fleet.battery_ids,
            "site_id": [fleet.site_ids[s] for s in fleet.battery_site],
            "string_id": [fleet.string_ids[s] for s in fleet.battery_string],
            "position": fleet.battery_position,
            "model": [fleet.models[m].name for m in fleet.battery_model],
            "profile": [PROFILE_NAMES[p] for p in fleet.profile],
            "capacity_ah": capacity * fleet.capacity_spread,
            "baseline_resistance_mohm": resistance * fleet.resistance_spread,
            "initial_soh_pct": fleet.initial_soh_pct,
            "rack_offset_c": fleet.rack_offset_c,
        })
        starts = np.flatnonzero(np.diff(fleet.battery_string, prepend=-1))
        jars = np.diff(np.append(starts, fleet.size))
        rated_ah = np.add.reduceat(capacity * fleet.capacity_spread, starts) / jars
        _insert_columns(con, "strings", {
            "string_key": np.arange(len(fleet.string_ids), dtype=np.int32),
            "string_id": fleet.string_ids,
            "site_id": [fleet.site_ids[site] for site in fleet.string_site],
            "jars": jars.astype(np.int32),
            "rated_capacity_ah": rated_ah,
            "current_full_scale_a": current_full_scale_a(rated_ah),
        })
        if scenario_names:
            con.executemany("INSERT INTO scenario_catalogue (bit, scenario) VALUES (?, ?)",
                            list(enumerate(scenario_names)))
        con.commit()

    # ------------------------------------------------------------------------------ sink
    def readings(self, batch: ReadingBatch) -> None:
        tables = (batch_to_arrow(batch), string_batch_to_arrow(batch), ohmic_tests_to_arrow(batch))
        events, self._events = self._events, []
        self.readings_written += batch.rows
        self.string_readings_written += len(batch.string_columns["string_key"])
        self.ohmic_tests_written += len(batch.ohmic_tests["battery_key"])
        self.ticks_written += batch.ticks
        self.last_timestamp_us = int(batch.columns["timestamp_us"][-1])
        self._submit(("batch", tables, events, self.readings_written, self.ticks_written, self.last_timestamp_us))

    def event(self, event: Event) -> None:
        self._events.append(event)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the file being written, for readers in this process (DuckDB lets no other process
        open it meanwhile); it sees the batches committed so far and closes with the recorder."""
        return self._connection.cursor()

    def close(self, status: str = "complete", wall_seconds: float = 0.0) -> None:
        """Write what is pending and mark the run; ``status`` is 'complete' or 'incomplete'.

        The writer is always stopped and the file always closed, even after a write failed (a full
        disk): then the run is marked incomplete if the file still takes the write, and the first
        error is raised once the file is released.
        """
        events, self._events = self._events, []
        if self._error is not None:
            status = "incomplete"
        self._queue.put(("close", events, status, wall_seconds))
        self._queue.put(None)
        self._writer.join()
        try:
            self._connection.close()
        except duckdb.Error as error:
            self._error = self._error or error
        if self._error is not None:
            raise self._error

    # ------------------------------------------------------------------------------ writer
    def _submit(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def _write_loop(self) -> None:
        cursor = self._connection.cursor()
        while (item := self._queue.get()) is not None:
            # After a failed write only the closing mark is still tried: it is small and may fit.
            if self._error is not None and item[0] != "close":
                continue
            try:
                self._write(cursor, item)
            except BaseException as error:  # surfaced to the simulating thread on its next call
                _rollback(cursor)
                self._error = self._error or error
        try:
            cursor.close()
        except duckdb.Error as error:
            self._error = self._error or error

    def _write(self, cursor: duckdb.DuckDBPyConnection, item) -> None:
        kind = item[0]
        cursor.begin()
        if kind == "batch":
            _, (table, strings, tests), events, readings, ticks, last_us = item
            # A relation over the Arrow table, not a registered view: the scan then holds the GIL far
            # less, so the simulation keeps computing while DuckDB writes (measured: 4× the insert
            # rate with a busy main thread).
            cursor.from_arrow(table).insert_into("reading_samples")
            cursor.from_arrow(strings).insert_into("string_readings")
            if tests.num_rows:
                cursor.from_arrow(tests).insert_into("ohmic_tests")
            self._write_events(cursor, events)
            cursor.execute(
                'UPDATE runs SET readings = ?, ticks = ?, "end" = ?',
                [readings, ticks, EPOCH + timedelta(microseconds=last_us)],
            )
        elif kind == "close":
            _, events, status, wall_seconds = item
            self._write_events(cursor, events)
            cursor.execute("UPDATE runs SET status = ?, wall_seconds = ?", [status, wall_seconds])
        cursor.commit()
        if kind == "close":
            cursor.execute("CHECKPOINT")

    @staticmethod
    def _write_events(cursor: duckdb.DuckDBPyConnection, events: list[Event]) -> None:
        if not events:
            return
        table = pa.table({
            "timestamp": pa.array([e.timestamp_us for e in events], pa.int64()).cast(_TIMESTAMP),
            "kind": [e.kind for e in events],
            "site_id": [e.site_id for e in events],
            "string_id": [e.string_id for e in events],
            "battery_id": [e.battery_id for e in events],
            "detail": [e.detail_json() for e in events],
        })
        cursor.register("new_events", table)
        cursor.execute("INSERT INTO events BY NAME SELECT * FROM new_events")
        cursor.unregister("new_events")
        for event in events:
            if event.kind == JAR_REPLACED:
                Recorder._write_replacement(cursor, event)

    @staticmethod
    def _write_replacement(cursor: duckdb.DuckDBPyConnection, event: Event) -> None:
        """A jar replaced after a failed capacity test: the new jar's row, and the old one's end of service."""
        detail, at = event.detail, EPOCH + timedelta(microseconds=event.timestamp_us)
        cursor.execute(
            "INSERT INTO batteries (battery_key, battery_id, site_id, string_id, position, model, profile, capacity_ah, "
            "baseline_resistance_mohm, initial_soh_pct, rack_offset_c, installed_at, replaces) "
            "SELECT ?, ?, site_id, string_id, position, model, ?, ?, ?, 100.0, rack_offset_c, ?, battery_id "
            "FROM batteries WHERE battery_id = ?",
            [detail["battery_key"], event.battery_id, detail["profile"], detail["capacity_ah"],
             detail["baseline_resistance_mohm"], at, detail["replaces"]])
        cursor.execute("UPDATE batteries SET replaced_at = ?, replaced_by = ? WHERE battery_id = ?",
                       [at, event.battery_id, detail["replaces"]])
