"""Sink throughput against the server's own ingest of the same rows (issue 17). So far: PostgreSQL only.

    .venv/bin/python bench/bench_sinks.py [--rows 500000]

Prints rows/s through PostgresSink (formatting on its worker + COPY into the original schema, indexes on) next to
a plain COPY of the same text by psycopg, and the cost per reading on the simulation's thread (the hand-over)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.real_servers import PostgresCluster  # noqa: E402

from battsim.engine.readings import ReadingBatch  # noqa: E402
from battsim.sinks import PostgresConfig  # noqa: E402
from battsim.sinks.payload import JarIds  # noqa: E402
from battsim.sinks.postgres import COPY_SQL, PostgresSink, telemetry_text  # noqa: E402

JARS = 240
BATCH_TICKS = 100


def batches(rows: int, rng: np.random.Generator) -> list[ReadingBatch]:
    out = []
    for first in range(0, rows // JARS, BATCH_TICKS):
        size = BATCH_TICKS * JARS
        columns = {
            "timestamp_us": np.repeat(1_767_225_600_000_000 + (first + np.arange(BATCH_TICKS)) * 60_000_000, JARS),
            "battery_key": np.tile(np.arange(JARS, dtype=np.uint16), BATCH_TICKS),
            **{name: rng.normal(scale, 0.1, size).astype(np.float32) for name, scale in
               [("voltage_v", 13.5), ("current_a", 0.0), ("temperature_c", 25.0), ("internal_resistance_mohm", 4.0),
                ("soc_pct", 100.0), ("soh_pct", 98.0)]},
        }
        out.append(ReadingBatch(columns=columns, first_tick=first, ticks=BATCH_TICKS))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=480_000)
    rows = parser.parse_args().rows
    ids = [f"B{key:03d}" for key in range(JARS)]
    work = batches(rows, np.random.default_rng(0))
    total = sum(batch.columns["voltage_v"].size for batch in work)
    root = Path(tempfile.mkdtemp(prefix="battsim-bench-pg-"))
    cluster = PostgresCluster(root)
    try:
        sink = PostgresSink(PostgresConfig(dsn=cluster.dsn, create=True, queue_batches=len(work)),
                            JarIds(ids, ["S"] * JARS, ["S_STR01"] * JARS))
        started = time.perf_counter()
        for batch in work:
            sink.readings(batch)
        handed_s = time.perf_counter() - started
        sink.close(timeout_s=600)
        sink_s = time.perf_counter() - started
        texts = [telemetry_text(batch, ids)[0] for batch in work]
        with psycopg.connect(cluster.dsn) as connection:
            connection.execute("TRUNCATE telemetry")
            connection.commit()
            started = time.perf_counter()
            for text in texts:
                with connection.transaction(), connection.cursor().copy(COPY_SQL) as copy:
                    copy.write(text)
            copy_s = time.perf_counter() - started
    finally:
        cluster.stop()
        shutil.rmtree(root)
    print(f"rows {total:,}  PostgresSink {total / sink_s:,.0f} rows/s  plain COPY {total / copy_s:,.0f} rows/s  "
          f"ratio {copy_s / sink_s:.2f}  simulation thread {handed_s / total * 1e9:.2f} ns/reading")


if __name__ == "__main__":
    main()
