"""PostgreSQL sink against a throwaway PostgreSQL 15 cluster on 127.0.0.1 (tests/real_servers.py)."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import psycopg
import pytest
from tests.real_servers import PostgresCluster, free_port
from tests.sink_batches import simulate

from battsim.engine.maintenance import JAR_REPLACED
from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks import PostgresConfig, SinkConfigError, parse_sinks
from battsim.sinks.payload import JarIds
from battsim.sinks.postgres import PostgresSink

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
IDS = JarIds([f"B{key:02d}" for key in range(4)], ["S"] * 4, ["S_STR01"] * 4)


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


def batch(ticks: int, jars: int, first_key: int = 0) -> ReadingBatch:
    rows = ticks * jars
    nan = np.float32(np.nan)
    columns = {
        "timestamp_us": np.repeat(START_US + np.arange(ticks, dtype=np.int64) * 60_000_000, jars),
        "battery_key": np.tile(np.arange(first_key, first_key + jars, dtype=np.uint16), ticks),
        "voltage_v": np.full(rows, 13.479, np.float32), "current_a": np.full(rows, -1.25, np.float32),
        "temperature_c": np.full(rows, 25.0, np.float32), "internal_resistance_mohm": np.full(rows, nan, np.float32),
        "soc_pct": np.full(rows, 100.0, np.float32), "soh_pct": np.full(rows, 98.5, np.float32),
    }
    if rows > 2:
        columns["voltage_v"][1] = nan          # a dropout: the schema's NOT NULL voltage cannot hold it
        columns["temperature_c"][2] = nan      # nor its NOT NULL temperature
    return ReadingBatch(columns=columns, first_tick=0, ticks=ticks)


def test_batches_land_in_the_original_schema_with_dropouts_skipped(dsn):
    sink = PostgresSink(PostgresConfig(dsn=dsn, create=True), IDS)
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
    assert first[2:] == (13.479, -1.25, 25.0, None, 100.0, 98.5)   # the float32's shortest decimals
    status = sink.status()
    assert (status["kind"], status["sent"], status["dropped"], status["skipped"]) == ("postgres", 12, 0, 2)


def test_a_replaced_jar_gets_its_battery_row_and_its_own_id(dsn):
    ids = JarIds(list(IDS.battery_ids), ["S"] * 4, ["S_STR01"] * 4)
    sink = PostgresSink(PostgresConfig(dsn=dsn, create=True), ids)
    sink.readings(batch(ticks=1, jars=4))
    sink.event(Event(START_US, JAR_REPLACED, "S", "S_STR01", "B00_R1", {"battery_key": 4}))
    sink.readings(batch(ticks=1, jars=1, first_key=4))
    sink.close()
    with psycopg.connect(dsn) as connection:
        ids_written = {row[0] for row in connection.execute("SELECT battery_id FROM telemetry")}
    assert "B00_R1" in ids_written and sink.status()["dropped"] == 0


def test_a_fleet_over_parallel_connections_arrives_whole(dsn):
    fleet, batches = simulate(ticks=20, ticks_per_batch=5)
    sink = PostgresSink(PostgresConfig(dsn=dsn, create=True, connections=3), JarIds.of_fleet(fleet), wait=True)
    for one in batches:
        sink.readings(one)
    sink.close()
    expected = sum(int((~np.isnan(b.columns["voltage_v"]) & ~np.isnan(b.columns["temperature_c"])).sum())
                   for b in batches)
    with psycopg.connect(dsn) as connection:
        count, distinct = connection.execute('SELECT count(*), count(DISTINCT (battery_id, "timestamp")) '
                                             "FROM telemetry").fetchone()
    assert count == distinct == expected == sink.status()["sent"] - sink.status()["skipped"]


def test_missing_table_is_retried_then_counted_dropped(dsn):
    sink = PostgresSink(PostgresConfig(dsn=dsn, create=False, max_retries=1, backoff_s=0.01), IDS)
    sink.readings(batch(ticks=1, jars=4))
    sink.close()
    status = sink.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (0, 1, 4)
    assert "telemetry" in status["last_error"]


def test_an_unreachable_server_delays_nothing_and_is_counted():
    port = free_port()
    sink = PostgresSink(PostgresConfig(dsn=f"host=127.0.0.1 port={port} user=x connect_timeout=2", create=True,
                                       max_retries=0), IDS)
    sink.readings(batch(ticks=1, jars=4))     # returns at once; the connection is tried on the worker
    sink.close()
    assert sink.status()["dropped"] == 4 and "OperationalError" in sink.status()["last_error"]


@pytest.mark.parametrize(("section", "message"), [
    ({"kind": "postgres"}, "sink[0]: 'dsn' is required"),
    ({"kind": "postgres", "dsn": "x", "connections": 0}, "'connections' must be at least 1"),
    ({"kind": "postgres", "dsn": "x", "connections": 17}, "'connections' must be at most 16"),
    ({"kind": "postgres", "dsn": "x", "create": 1}, "'create' must be true or false"),
    ({"kind": "postgres", "dsn": "x", "table": "t"}, "unknown field 'table' for kind 'postgres'"),
])
def test_bad_postgres_sections_name_the_field(section, message):
    with pytest.raises(SinkConfigError) as error:
        parse_sinks({"sink": [section]})
    assert message in str(error.value)


def test_battsim_run_backfills_the_original_table(dsn, tmp_path):
    from typer.testing import CliRunner

    from battsim.recordings import open_recording
    from battsim.service.cli import app

    out = tmp_path / "run.duckdb"
    result = CliRunner().invoke(app, ["run", "--preset", "single-string", "--days", "1", "--out", str(out),
                                      "--postgres", dsn, "--no-progress"])
    assert result.exit_code == 0, result.output
    with open_recording(out) as recording:
        recorded = recording.sql("SELECT count(*) FILTER (WHERE isfinite(voltage_v) AND isfinite(temperature_c)) "
                                 "AS n FROM readings")["n"][0]
    with psycopg.connect(dsn) as connection:
        written, jars = connection.execute("SELECT count(*), count(DISTINCT battery_id) FROM telemetry").fetchone()
    assert written == recorded and jars == 24
    assert "sink postgres" in result.output and " 0 dropped" in result.output
