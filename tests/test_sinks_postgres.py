"""PostgreSQL sink against a throwaway PostgreSQL 15 cluster on 127.0.0.1 (tests/real_servers.py)."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from tests.real_servers import PostgresCluster

from battsim.engine.readings import ReadingBatch
from battsim.sinks.postgres import PostgresSink

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="battsim-pg-"))
    cluster = PostgresCluster(root)
    yield cluster
    cluster.stop()
    shutil.rmtree(root)


@pytest.fixture
def dsn(cluster):
    with psycopg.connect(cluster.dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS telemetry, battery")
    return cluster.dsn


def batch(ticks: int, jars: int) -> ReadingBatch:
    rows = ticks * jars
    nan = np.float32(np.nan)
    columns = {
        "timestamp_us": np.repeat(START_US + np.arange(ticks, dtype=np.int64) * 60_000_000, jars),
        "battery_key": np.tile(np.arange(jars, dtype=np.uint16), ticks),
        "voltage_v": np.full(rows, 13.5, np.float32), "current_a": np.full(rows, -1.25, np.float32),
        "temperature_c": np.full(rows, 25.0, np.float32), "internal_resistance_mohm": np.full(rows, nan, np.float32),
        "soc_pct": np.full(rows, 100.0, np.float32), "soh_pct": np.full(rows, 98.5, np.float32),
    }
    columns["voltage_v"][1] = nan          # a dropout: the schema's NOT NULL voltage cannot hold it
    columns["temperature_c"][2] = nan      # nor its NOT NULL temperature
    return ReadingBatch(columns=columns, first_tick=0, ticks=ticks)


def test_batches_land_in_the_original_schema_with_dropouts_skipped(dsn):
    sink = PostgresSink(dsn, [f"B{key:02d}" for key in range(4)], create=True)
    sink.readings(batch(ticks=3, jars=4))
    sink.close()
    with psycopg.connect(dsn) as connection:
        rows = connection.execute('SELECT battery_id, "timestamp", voltage, "current", temperature, internal_resistance, '
                                  'soc_pct, soh_pct FROM telemetry ORDER BY "timestamp", battery_id').fetchall()
        batteries = connection.execute("SELECT count(*) FROM battery").fetchone()[0]
    assert batteries == 4
    assert len(rows) == 10 and sink.skipped == 2
    assert [row[0] for row in rows[:2]] == ["B00", "B03"]
    first = rows[0]
    assert first[1].isoformat() == "2026-01-01T00:00:00+00:00"
    assert first[2:] == (13.5, -1.25, 25.0, None, 100.0, 98.5)
    assert sink.worker.status()["sent"] == 12 and sink.worker.status()["dropped"] == 0


def test_missing_table_is_retried_then_counted_dropped(dsn):
    sink = PostgresSink(dsn, [f"B{key:02d}" for key in range(4)], create=False, max_retries=1, backoff_s=0.01)
    sink.readings(batch(ticks=1, jars=4))
    sink.close()
    status = sink.worker.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (0, 1, 4)
    assert "telemetry" in status["last_error"]
