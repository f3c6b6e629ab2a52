"""Sink throughput against each server's own ingest of the same rows, measured in the same run (issue 17).

    .venv/bin/python bench/bench_sinks.py [--ticks 250] [--live-ticks 60]

Readings are a real simulation of the full fleet (thailand-full, 1,944 jars, 60 s interval). Per sink:
  * webhook (a stdlib ThreadingHTTPServer on 127.0.0.1 that parses every body): the sink (encoding on its worker,
    POSTs of 1,000 readings) vs POSTing the same bodies, encoded beforehand, with the same client (urllib);
  * MQTT (Debian's mosquitto on 127.0.0.1), QoS 1 per jar and per string: the sink (encoding on its worker, the
    broker's acknowledgements awaited) vs paho publishing the same topics and payloads, encoded beforehand;
  * PostgreSQL (a throwaway PostgreSQL 15 cluster, the original schema with its three indexes), batches of 50
    ticks (97,200 rows): the sink over 1 and 2 connections vs psycopg COPYing the same text, formatted
    beforehand, over 1 and 2 connections (PostgreSQL's own ingest here; the sink cannot beat it).
Each row gives readings/s delivered, the ratio to the baseline, and the cost per reading on the simulation's
thread (the hand-over in ``readings()``, µs). Figures go to bench/results.json (bench_sinks)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.real_servers import MosquittoBroker, PostgresCluster, WebhookServer  # noqa: E402
from tests.sink_batches import simulate  # noqa: E402

from battsim.engine.readings import ReadingBatch  # noqa: E402
from battsim.sinks import MqttConfig, PostgresConfig, WebhookConfig  # noqa: E402
from battsim.sinks.mqtt import MAX_INFLIGHT, MqttSink  # noqa: E402
from battsim.sinks.payload import JarIds, JsonRows  # noqa: E402
from battsim.sinks.postgres import COPY_SQL, SCHEMA_SQL, PostgresSink, insert_batteries, telemetry_text  # noqa: E402
from battsim.sinks.webhook import WebhookSink, encode_rows  # noqa: E402
from results_file import Measurement  # noqa: E402

PRESET = "thailand-full"


def feed(sink, batches: list[ReadingBatch], close_timeout_s: float = 600) -> tuple[float, float]:
    """(wall seconds until everything was delivered, seconds spent in readings() on this thread)."""
    started = time.perf_counter()
    handed = 0.0
    for batch in batches:
        before = time.perf_counter()
        sink.readings(batch)
        handed += time.perf_counter() - before
    sink.close(close_timeout_s)
    return time.perf_counter() - started, handed


def row(name: str, rows: int, sink_s: float, handed_s: float, baseline: str, baseline_s: float, status: dict) -> dict:
    figures = {"sink": name, "readings": rows, "readings_per_s": round(rows / sink_s),
               "baseline": baseline, "baseline_readings_per_s": round(rows / baseline_s),
               "ratio": round(baseline_s / sink_s, 2), "simulation_thread_us_per_reading": float(f"{handed_s / rows * 1e6:.3g}"),
               "sent": status["sent"], "dropped": status["dropped"]}
    print(f"{name:<22} {figures['readings_per_s']:>10,} readings/s   {baseline:<34} {figures['baseline_readings_per_s']:>10,}"
          f"   ratio {figures['ratio']:.2f}   simulation thread {figures['simulation_thread_us_per_reading']:.3g} µs/reading"
          f"   (sent {status['sent']:,}, dropped {status['dropped']:,})", flush=True)
    return figures


def bench_webhook(fleet, batches) -> dict:
    rows = sum(batch.rows for batch in batches)
    server = WebhookServer()
    try:
        sink = WebhookSink(WebhookConfig(url=server.url, batch_rows=1000, queue_batches=rows), JarIds.of_fleet(fleet))
        sink_s, handed_s = feed(sink, batches)
        assert len(server.rows()) == rows
        server.received.clear()
        encoder = JsonRows(JarIds.of_fleet(fleet))
        sent_at = datetime.now(UTC).isoformat()
        bodies = [encode_rows(encoder.rows(batch, sent_at, start, min(start + 1000, batch.rows)).tolist(), False)
                  for batch in batches for start in range(0, batch.rows, 1000)]
        started = time.perf_counter()
        for body, headers in bodies:
            with urllib.request.urlopen(urllib.request.Request(server.url, data=body, headers=headers)) as response:
                response.read()
        baseline_s = time.perf_counter() - started
        assert len(server.rows()) == rows
    finally:
        server.stop()
    return row("webhook", rows, sink_s, handed_s, "POST of the same bodies (urllib)", baseline_s, sink.status())


def paho_baseline(port: int, messages: list[tuple[str, str]]) -> float:
    """Seconds for paho to publish ``messages`` at QoS 1 and get every acknowledgement."""
    done = threading.Event()
    acked = [0]

    def on_publish(client, userdata, mid, reason_code, properties):
        acked[0] += 1
        if acked[0] == len(messages):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(MqttConfig.buffer_messages)  # as the sink: below MQTT's 65,535 message ids
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    for topic, payload in messages:
        while client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)  # wait for acknowledgements to make room
    assert done.wait(600)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def bench_mqtt(fleet, batches) -> list[dict]:
    rows = sum(batch.rows for batch in batches)
    root = Path(tempfile.mkdtemp(prefix="battsim-bench-mqtt-"))
    broker = MosquittoBroker(root)
    figures = []
    try:
        for per in ("jar", "string"):
            sink = MqttSink(MqttConfig(port=broker.port, per=per, qos=1, client_id=f"bench-{per}",
                                       queue_batches=len(batches)), JarIds.of_fleet(fleet), wait=True)
            while sink.status()["state"] != "connected":
                time.sleep(0.01)
            sink_s, handed_s = feed(sink, batches)
            # The baseline publishes what the sink published: the same topics and payloads, encoded beforehand.
            sent_at = datetime.now(UTC).isoformat()
            messages = [(topic, payload) for batch in batches for topic, payload, _ in sink.messages(batch, sent_at)]
            baseline_s = paho_baseline(broker.port, messages)
            figures.append(row(f"mqtt qos1 per {per}", rows, sink_s, handed_s, "paho, same payloads encoded before",
                               baseline_s, sink.status()))
    finally:
        broker.stop()
        shutil.rmtree(root)
    return figures


def copy_texts(dsn: str, texts: list[str], connections: int) -> float:
    def copy_some(part: list[str]) -> None:
        with psycopg.connect(dsn) as connection:
            for text in part:
                with connection.transaction(), connection.cursor().copy(COPY_SQL) as copy:
                    copy.write(text)

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(copy_some, [texts[index::connections] for index in range(connections)]))
    return time.perf_counter() - started


def bench_postgres(fleet, batches) -> list[dict]:
    rows = sum(batch.rows for batch in batches)
    ids = JarIds.of_fleet(fleet)
    root = Path(tempfile.mkdtemp(prefix="battsim-bench-pg-"))
    cluster = PostgresCluster(root)
    figures = []

    def truncate() -> None:
        with psycopg.connect(cluster.dsn, autocommit=True) as connection:
            connection.execute("TRUNCATE telemetry")
            connection.execute("VACUUM ANALYZE telemetry")

    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as connection:
            connection.execute(SCHEMA_SQL)
            insert_batteries(connection, ids.battery_ids)
        started = time.perf_counter()
        texts = [telemetry_text(batch, ids.battery_ids)[0] for batch in batches]
        format_s = time.perf_counter() - started
        print(f"COPY text formatted by polars: {rows / format_s:,.0f} rows/s", flush=True)
        for connections in (1, 2):
            truncate()
            baseline_s = copy_texts(cluster.dsn, texts, connections)
            truncate()
            # Room for every batch, so the hand-over's cost is measured, not a back-fill's wait for the server.
            sink = PostgresSink(PostgresConfig(dsn=cluster.dsn, create=True, connections=connections,
                                               queue_batches=len(batches)), JarIds.of_fleet(fleet), wait=True)
            sink_s, handed_s = feed(sink, batches)
            with psycopg.connect(cluster.dsn) as connection:
                written = connection.execute("SELECT count(*) FROM telemetry").fetchone()[0]
            assert written == rows - sink.skipped, (written, rows, sink.skipped)
            figures.append(row(f"postgres ×{connections} connection{'s' if connections > 1 else ''}", rows, sink_s,
                               handed_s, f"plain COPY of the same text ×{connections}", baseline_s, sink.status()))
        figures[-1]["format_rows_per_s"] = round(rows / format_s)
        # Where PostgreSQL's time goes: the same COPY into the table without its indexes and foreign key, and
        # without the uuid default too (what the original schema costs; the sink writes that schema).
        with psycopg.connect(cluster.dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE bare (LIKE telemetry INCLUDING DEFAULTS)")
            connection.execute('CREATE TABLE bare_no_id (battery_id varchar(50), "timestamp" timestamptz, '
                               'voltage float8, "current" float8, temperature float8, internal_resistance float8, '
                               "soc_pct float8, soh_pct float8)")
            for table, label in (("bare", "no_indexes_no_fk"), ("bare_no_id", "no_indexes_no_fk_no_uuid")):
                started = time.perf_counter()
                for text in texts:
                    with connection.cursor().copy(COPY_SQL.replace("COPY telemetry", f"COPY {table}")) as copy:
                        copy.write(text)
                figures[-1][f"plain_copy_{label}_rows_per_s"] = round(rows / (time.perf_counter() - started))
                print(f"plain COPY of the same text into the table with {label.replace('_', ' ')}: "
                      f"{figures[-1][f'plain_copy_{label}_rows_per_s']:,} rows/s", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(root)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=250, help="Full-fleet ticks for PostgreSQL (250: 486,000 rows).")
    parser.add_argument("--live-ticks", type=int, default=60, help="Full-fleet ticks for webhook and MQTT, one a batch.")
    args = parser.parse_args()
    measurement = Measurement("bench_sinks")
    fleet, live = simulate(args.live_ticks, preset=PRESET)
    _, backfill = simulate(args.ticks, preset=PRESET, ticks_per_batch=50)
    print(f"{PRESET}: {fleet.size} jars; webhook/MQTT {args.live_ticks} ticks one a batch "
          f"({args.live_ticks * fleet.size:,} readings), PostgreSQL {args.ticks} ticks in batches of 50 "
          f"({args.ticks * fleet.size:,} rows)", flush=True)
    rows = [bench_webhook(fleet, live), *bench_mqtt(fleet, live), *bench_postgres(fleet, backfill)]
    measurement.save({"preset": PRESET, "jars": fleet.size, "rows": rows,
                      "note": "ratio = baseline seconds / sink seconds for the same rows (1.0: as fast as the "
                              "server's own ingest through the same client)"})
    assert all(figure["dropped"] == 0 for figure in rows)
    assert np.all([figure["sent"] == figure["readings"] for figure in rows])


if __name__ == "__main__":
    main()
