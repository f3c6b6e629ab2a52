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
from battsim.engine.sensors import SensorFault
from battsim.engine.world import EPOCH, Event
from battsim.recordings.schema import FORMAT_VERSION, create_statements, reading_sample_columns

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_MEASURED = ("voltage_v", "current_a", "temperature_c", "internal_resistance_mohm")
RECORDER_MEMORY_LIMIT = "96MB"


class RecordingExistsError(FileExistsError):
    pass


def _rollback(cursor: duckdb.DuckDBPyConnection) -> None:
    try:
        cursor.rollback()
    except duckdb.Error:
        pass  # no transaction open, or the database refuses everything after a fatal write error


@dataclass(frozen=True)
class RunInfo:
    seed: int
    start: datetime
    end: datetime | None
    interval_s: int
    config: dict
    preset: str | None = None


def batch_to_arrow(batch: ReadingBatch) -> pa.Table:
    """Zero-copy Arrow view of a batch; NaN measurements (sensor dropout) become NULL."""
    dropout = bool((batch.columns["sensor_fault"] == SensorFault.DROPOUT).any())
    arrays, names = [], []
    for name, _ in reading_sample_columns():
        if name == "timestamp":
            arrays.append(pa.array(batch.columns["timestamp_us"]).cast(_TIMESTAMP))
        else:
            arrays.append(pa.array(batch.columns[name], from_pandas=dropout and name in _MEASURED))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


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
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, 0, 0, 0, ?)",
            [self.run_id, info.seed, json.dumps(info.config, default=str), info.start, info.end, info.interval_s,
             __version__, FORMAT_VERSION, info.preset, datetime.now(UTC)],
        )
        spec = fleet.spec
        con.executemany(
            "INSERT INTO sites VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[i, s.site_id, s.name, s.timezone, s.longitude_deg, s.load_kw_per_string, s.room_setpoint_c]
             for i, s in enumerate(spec.sites)],
        )
        resistance = np.array([fleet.models[m].internal_resistance_mohm for m in fleet.battery_model])
        capacity = np.array([fleet.models[m].capacity_ah_c10 for m in fleet.battery_model])
        table = pa.table({
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
        })
        con.register("new_batteries", table)
        con.execute("INSERT INTO batteries SELECT * FROM new_batteries")
        con.unregister("new_batteries")
        if scenario_names:
            con.executemany("INSERT INTO scenario_catalogue VALUES (?, ?)", list(enumerate(scenario_names)))
        con.commit()

    # ------------------------------------------------------------------------------ sink
    def readings(self, batch: ReadingBatch) -> None:
        table = batch_to_arrow(batch)
        events, self._events = self._events, []
        self.readings_written += batch.rows
        self.ticks_written += batch.ticks
        self.last_timestamp_us = int(batch.columns["timestamp_us"][-1])
        self._submit(("batch", table, events, self.readings_written, self.ticks_written, self.last_timestamp_us))

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
            _, table, events, readings, ticks, last_us = item
            # A relation over the Arrow table, not a registered view: the scan then holds the GIL far
            # less, so the simulation keeps computing while DuckDB writes (measured: 4× the insert
            # rate with a busy main thread).
            cursor.from_arrow(table).insert_into("reading_samples")
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
        cursor.execute("INSERT INTO events SELECT * FROM new_events")
        cursor.unregister("new_events")
