"""PostgreSQL: COPY readings into a table of the original backend's shape (../shared/reference/original-backend.md).

Dropouts: that schema has ``voltage`` and ``temperature`` NOT NULL, so a reading the monitor could not take
(NaN voltage or temperature: a communication gap or a dropout fault) is not written at all and is counted as
``skipped``; NaN current, resistance (before the first ohmic test), SoC or SoH are written as NULL, which those
nullable columns allow. Ground-truth columns are not part of that schema and are not written."""

from __future__ import annotations

import math

import numpy as np
import psycopg

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
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


def telemetry_text(batch: ReadingBatch, battery_ids: list[str]) -> tuple[str, int, int]:
    """COPY text of a batch's writable rows, with how many rows were written and skipped (dropouts)."""
    columns = batch.columns
    writable = ~(np.isnan(columns["voltage_v"]) | np.isnan(columns["temperature_c"]))
    stamps = np.datetime_as_string(columns["timestamp_us"][writable].astype("datetime64[us]"), unit="us")
    keys = columns["battery_key"][writable]
    values = [columns[name][writable].astype(np.float64).tolist() for name in _MEASURED]
    lines = []
    for row, (key, stamp) in enumerate(zip(keys.tolist(), stamps.tolist(), strict=True)):
        fields = [battery_ids[key], stamp + "+00"]
        for column in values:
            value = column[row]
            # float32 → shortest decimal of the float32 would be nicer; 7 significant digits keep its precision
            fields.append("\\N" if math.isnan(value) else f"{value:.7g}")
        lines.append("\t".join(fields))
    written = len(lines)
    return ("\n".join(lines) + "\n" if lines else ""), written, int(writable.size - written)


class PostgresSink:
    """A :class:`~battsim.engine.world.Sink` that COPYs each batch on its own thread and connection, one
    transaction per batch (a failed COPY leaves nothing half-written and is retried whole).

    The worker's ``sent`` counts the rows of delivered batches; ``skipped`` how many of them were dropouts."""

    def __init__(self, dsn: str, battery_ids: list[str], create: bool = False, queue_batches: int = 64,
                 max_retries: int = 5, backoff_s: float = 0.5, name: str = "postgres"):
        self.battery_ids = list(battery_ids)
        self.skipped = 0
        self._dsn = dsn
        self._connection: psycopg.Connection | None = None
        if create:
            with psycopg.connect(dsn, autocommit=True) as connection:
                connection.execute(SCHEMA_SQL)
                connection.execute("CREATE TEMP TABLE new_battery (battery_id varchar(50))")
                with connection.cursor().copy("COPY new_battery (battery_id) FROM STDIN") as copy:
                    for battery_id in self.battery_ids:
                        copy.write_row((battery_id,))
                connection.execute("INSERT INTO battery SELECT battery_id FROM new_battery ON CONFLICT DO NOTHING")
        self.worker = SinkWorker(name, self._copy, lambda item: item[1], capacity=queue_batches,
                                 max_retries=max_retries, backoff_s=backoff_s)

    def readings(self, batch: ReadingBatch) -> None:
        # Formatting happens on the worker too: the simulation's thread only hands over the batch.
        self.worker.put((batch, int(batch.columns["voltage_v"].size)))

    def event(self, event: Event) -> None:
        """Events have no table in the original schema."""

    def close(self, timeout_s: float = 60.0) -> None:
        self.worker.close(timeout_s)
        if self._connection is not None:
            self._connection.close()

    def _copy(self, item) -> None:
        batch, _ = item
        text, _written, skipped = telemetry_text(batch, self.battery_ids)
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(self._dsn)
            with self._connection.transaction(), self._connection.cursor().copy(COPY_SQL) as copy:
                copy.write(text)
        except psycopg.OperationalError:
            self._connection = None
            raise
        self.skipped += skipped
