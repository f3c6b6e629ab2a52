"""PostgreSQL: COPY readings into a table of the original backend's shape (../shared/reference/original-backend.md).

Dropouts: that schema has ``voltage`` and ``temperature`` NOT NULL, so a reading the monitor could not take
(NaN voltage or temperature: a communication gap or a dropout fault) is not written at all and is counted as
``skipped``; NaN current, resistance (before the first ohmic test), SoC or SoH are written as NULL, which those
nullable columns allow. Ground-truth columns are not part of that schema and are not written.

The COPY text is formatted by polars (column by column, in Rust, off the GIL) rather than row by row in Python;
with ``connections`` > 1, batches are COPYed over that many connections at once (each batch still one
transaction), which a back-fill's large batches can use while PostgreSQL indexes another."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import polars as pl
import psycopg

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks.config import PostgresConfig
from battsim.sinks.payload import JarIds
from battsim.sinks.worker import SinkWorker

# The original backend's tables, verbatim from the reference (gen_random_uuid is core since PostgreSQL 13).
SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS battery (battery_id varchar(50) PRIMARY KEY);
CREATE TABLE IF NOT EXISTS telemetry (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  battery_id varchar(50) NOT NULL REFERENCES battery(battery_id) ON DELETE CASCADE,
  "timestamp" timestamptz NOT NULL,
  voltage double precision NOT NULL,
  "current" double precision,
  temperature double precision NOT NULL,
  internal_resistance double precision,
  soc_pct double precision,
  soh_pct double precision
);
CREATE INDEX IF NOT EXISTS ix_telemetry_battery_id ON telemetry (battery_id);
CREATE INDEX IF NOT EXISTS ix_telemetry_timestamp ON telemetry USING brin ("timestamp");
CREATE INDEX IF NOT EXISTS ix_telemetry_battery_timestamp ON telemetry (battery_id, "timestamp");
"""

COPY_SQL = ('COPY telemetry (battery_id, "timestamp", voltage, "current", temperature, internal_resistance, '
            'soc_pct, soh_pct) FROM STDIN')
_MEASURED = ("voltage_v", "current_a", "temperature_c", "internal_resistance_mohm", "soc_pct", "soh_pct")


def telemetry_text(batch: ReadingBatch, battery_ids: tuple[str, ...] | list[str]) -> tuple[str, int, int]:
    """COPY text of a batch's writable rows, with how many rows were written and skipped (dropouts).

    Values are the float32 readings' shortest decimals (13.479, not 13.47900009), NaN as NULL (\\N)."""
    columns = batch.columns
    writable = ~(np.isnan(columns["voltage_v"]) | np.isnan(columns["temperature_c"]))
    keys = columns["battery_key"][writable].astype(np.int64)
    frame = pl.DataFrame({
        "battery_id": pl.Series(battery_ids, dtype=pl.Utf8).gather(keys),
        "timestamp": pl.from_epoch(pl.Series(columns["timestamp_us"][writable]), time_unit="us"),
        **{name: pl.Series(columns[name][writable]).fill_nan(None) for name in _MEASURED},
    })
    written = frame.height
    text = frame.write_csv(separator="\t", null_value="\\N", include_header=False, quote_style="never",
                           datetime_format="%Y-%m-%d %H:%M:%S%.6f+00") if written else ""
    return text, written, int(writable.size - written)


class PostgresSink:
    """A Sink that COPYs each batch on its own thread and connection, one transaction per batch (a failed COPY
    leaves nothing half-written and is retried whole).

    ``sent`` counts the rows of delivered batches; ``skipped`` how many of them were dropouts (not written)."""

    kind = "postgres"

    def __init__(self, config: PostgresConfig, ids: JarIds, wait: bool = False):
        self.config = config
        self.ids = ids
        self.skipped = 0
        self._skipped_lock = threading.Lock()  # the workers add to it from their threads
        # Battery rows known to exist (None: not ours to create). Tables and rows are made by the first COPY,
        # on a worker, so an unreachable server delays nothing and is retried like any delivery.
        self._inserted = 0 if config.create else None
        self._schema_lock = threading.Lock()
        self._states: list[dict] = []
        self.workers = [self._worker(index, wait) for index in range(config.connections)]
        self._next = itertools.cycle(self.workers)

    def _worker(self, index: int, wait: bool) -> SinkWorker:
        state = {"connection": None}
        self._states.append(state)

        def copy(batch: ReadingBatch) -> None:
            self._copy(batch, state)

        name = self.config.name if self.config.connections == 1 else f"{self.config.name}#{index}"
        return SinkWorker(name, copy, lambda batch: batch.rows, capacity=self.config.queue_batches,
                          max_retries=self.config.max_retries, backoff_s=self.config.backoff_s, wait=wait)

    def readings(self, batch: ReadingBatch) -> None:
        # Formatting happens on the worker: the simulation's thread only hands over the batch.
        next(self._next).put(batch)

    def event(self, event: Event) -> None:
        """Events have no table in the original schema; a replaced jar's new id is learned for its rows."""
        self.ids.learn(event)

    def status(self) -> dict:
        parts = [worker.status() for worker in self.workers]
        merged = {"kind": self.kind, "name": self.config.name, "state": _worst(part["state"] for part in parts),
                  "last_error": next((part["last_error"] for part in parts if part["last_error"]), None)}
        for counter in ("queued", "sent", "retried", "dropped"):
            merged[counter] = sum(part[counter] for part in parts)
        return merged | {"skipped": self.skipped}

    def close(self, timeout_s: float = 60.0) -> None:
        for worker in self.workers:
            worker.close(timeout_s)
        for state in self._states:
            if state["connection"] is not None:
                state["connection"].close()

    def _copy(self, batch: ReadingBatch, state: dict) -> None:
        battery_ids = self.ids.battery_ids
        text, _written, skipped = telemetry_text(batch, battery_ids)
        try:
            if state["connection"] is None or state["connection"].closed:
                state["connection"] = psycopg.connect(self.config.dsn)
            connection = state["connection"]
            if self._inserted is not None and self._inserted < len(battery_ids):
                with self._schema_lock, connection.transaction():
                    if self._inserted == 0:
                        connection.execute(SCHEMA_SQL)
                    insert_batteries(connection, battery_ids[self._inserted:])  # the fleet's, then replacements
                self._inserted = len(battery_ids)  # committed
            with connection.transaction(), connection.cursor().copy(COPY_SQL) as copy:
                copy.write(text)
        except psycopg.OperationalError:
            state["connection"] = None
            raise
        with self._skipped_lock:
            self.skipped += skipped


def insert_batteries(connection: psycopg.Connection, battery_ids) -> None:
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS new_battery (battery_id varchar(50))")
    connection.execute("TRUNCATE new_battery")
    with connection.cursor().copy("COPY new_battery (battery_id) FROM STDIN") as copy:
        for battery_id in battery_ids:
            copy.write_row((battery_id,))
    connection.execute("INSERT INTO battery SELECT battery_id FROM new_battery ON CONFLICT DO NOTHING")


def _worst(states) -> str:
    states = list(states)
    return next((state for state in ("retrying", "running", "stopped") if state in states), "stopped")
