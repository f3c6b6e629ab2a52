"""What the benchmarks share: DuckDB's own ingest of the same rows (the baseline of bench_batch and
bench_scale), and a real ``battsim serve`` of the full fleet on loopback (bench_live, bench_modbus)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import duckdb
import httpx

from battsim.engine.world import DEFAULT_BATCH_ROWS
from battsim.recordings.schema import create_statements

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def duckdb_ingest(sources: list[Path], rows: int, out: Path, batch_rows: int = DEFAULT_BATCH_ROWS,
                  sample_rows: int = 4_000_000) -> tuple[int, float]:
    """DuckDB's own rate for the same rows: the simulated readings (at most ``sample_rows``, from ``sources`` in
    order), read back into memory as Arrow batches of the recorder's size and inserted, again and again up to
    ``rows``, into a fresh file with the recording schema, one transaction per batch. (rows inserted, seconds)."""
    wanted = min(rows, sample_rows)
    batches, have = [], 0
    for source in sources:
        with duckdb.connect(str(source), read_only=True) as con:
            table = con.sql(f"SELECT * FROM reading_samples LIMIT {wanted - have}").to_arrow_table()
        batches += [table.slice(offset, batch_rows) for offset in range(0, table.num_rows, batch_rows)]
        have += table.num_rows
        if have >= wanted:
            break
    con = duckdb.connect(str(out))
    for statement in create_statements():
        con.execute(statement)
    inserted, began = 0, time.perf_counter()
    while inserted < rows:
        for batch in batches:
            con.begin()
            con.from_arrow(batch).insert_into("reading_samples")
            con.commit()
            inserted += batch.num_rows
            if inserted >= rows:
                break
    con.close()
    return inserted, time.perf_counter() - began


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def served_full_fleet(port: int, *options: str) -> AsyncIterator[tuple[subprocess.Popen, httpx.AsyncClient]]:
    """``battsim serve`` of thailand-full at a 1 s interval, 1x, no random outages (plus ``options``), on
    127.0.0.1:``port``, once it has recorded its first readings; stopped (SIGTERM) on leaving."""
    with tempfile.TemporaryDirectory() as data_dir:
        battsim = Path(sys.executable).parent / "battsim"
        server = subprocess.Popen([str(battsim), "serve", "--port", str(port), "--data-dir", data_dir, "--preset",
                                   "thailand-full", "--interval", "1", "--speed", "1", "--no-random-outages", *options],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for _ in range(600):
                    try:
                        if (await http.get("/api/v1/simulation/status")).json()["readings_generated"]:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise SystemExit("the server did not start")
                yield server, http
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
