"""The query endpoint's limits: spill kept in the data dir and capped, results capped in bytes, and
queries on their own bounded pool so that a burst of long ones never starves the other endpoints."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.test_analysis import make_story_recording

from battsim.recordings import sandbox
from battsim.recordings.sandbox import SandboxLimits, run_sandboxed
from battsim.service import routes_query
from battsim.service.app import create_app

# A sort of 2 M md5 strings (~100 MB) does not fit in 64 MB of memory, so it has to spill.
SPILLING_SQL = "SELECT count(*) AS n FROM (SELECT md5(i::VARCHAR) AS m FROM range(2000000) t(i) ORDER BY m)"
SMALL_MEMORY = SandboxLimits(memory_limit="64MB", max_temp_size="1GB", time_limit_s=600.0, threads=1)
# Seconds after which the blocked queries are let go even if the test never releases them, so that a
# failing test ends. The assertion is on order (the other endpoints answered before the release), not
# on a duration; the watchdog only has to fire before the old code's 30 s wait for a query slot ran
# out and handed the request threads back (with the pool, the answers come at once).
WATCHDOG_S = 20.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    make_story_recording(directory / "story.duckdb")
    return directory


@pytest.fixture(scope="module")
def recording(data_dir) -> Path:
    return data_dir / "story.duckdb"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ spill
def test_a_query_spills_inside_the_data_dir_never_the_working_directory(recording, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DuckDB's default for an in-memory instance would be ./.tmp here
    seen: list[Path] = []
    capped_rows = sandbox._capped_rows

    def spy(*args):
        # After the query ran, before its instance closes: its spill files are still on disk.
        seen.extend(path.relative_to(data_dir) for path in (data_dir / sandbox.SPILL_DIRECTORY).rglob("duckdb_temp_*"))
        return capped_rows(*args)

    monkeypatch.setattr(sandbox, "_capped_rows", spy)
    result = run_sandboxed(recording, SPILLING_SQL, SMALL_MEMORY)
    assert result.rows == [(2_000_000,)]
    assert seen and all(path.parts[0] == sandbox.SPILL_DIRECTORY for path in seen)
    assert list(tmp_path.iterdir()) == []  # no <cwd>/.tmp
    assert list((data_dir / sandbox.SPILL_DIRECTORY).iterdir()) == []  # the query's own directory is removed


def test_spilling_past_the_cap_is_refused_naming_it(recording, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = digest(recording)
    limits = SandboxLimits(memory_limit="64MB", max_temp_size="8MB", time_limit_s=600.0, threads=1)
    with pytest.raises(sandbox.QueryTooLarge) as caught:
        run_sandboxed(recording, SPILLING_SQL, limits)
    assert "8MB of spill space (max_temp_size)" in caught.value.reason
    assert list(tmp_path.iterdir()) == []
    assert list((data_dir / sandbox.SPILL_DIRECTORY).iterdir()) == []
    assert digest(recording) == before


def test_without_a_writable_spill_directory_spilling_is_off(recording, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sandbox, "SPILL_DIRECTORY", "no/such/parent")  # mkdir fails: spilling off, not ./.tmp
    with pytest.raises(sandbox.QueryTooLarge, match="64MB of memory"):
        run_sandboxed(recording, SPILLING_SQL, SMALL_MEMORY)
    assert list(tmp_path.iterdir()) == []
    assert run_sandboxed(recording, "SELECT 1 AS x", SMALL_MEMORY).rows == [(1,)]


# ------------------------------------------------------------------------------------ result size
def test_a_result_over_the_byte_cap_is_a_422_naming_the_cap(data_dir, recording):
    before = digest(recording)
    web = FastAPI()
    web.state.queries = routes_query.Queries(data_dir, SandboxLimits(row_limit=50, max_result_bytes=1_000_000))
    web.include_router(routes_query.router)
    client = TestClient(web)
    # 20 rows of 100 kB: under the row limit, twice the byte cap.
    response = client.post("/api/v1/query", json={"recording": "story",
                                                   "sql": "SELECT repeat('x', 100000) AS x FROM range(20)"})
    assert response.status_code == 422
    assert "1,000,000-byte cap" in response.json()["detail"] and len(response.content) < 1_000
    # Just under the cap is answered, and result_bytes is the size of the rows as sent.
    response = client.post("/api/v1/query", json={"recording": "story",
                                                   "sql": "SELECT repeat('é', 100000) AS x FROM range(4)"})
    body = response.json()
    assert response.status_code == 200 and body["row_count"] == 4 and body["max_result_bytes"] == 1_000_000
    assert body["result_bytes"] == len(json.dumps(body["rows"], ensure_ascii=False, separators=(",", ":")).encode())
    assert digest(recording) == before


# ------------------------------------------------------------------------------------ the pool
def test_a_burst_of_long_queries_never_starves_the_other_endpoints(data_dir, monkeypatch):
    burst = 44  # as in issue 11: 44 concurrent long queries made GET /recordings take 28.7 s
    capacity = routes_query.MAX_CONCURRENT_QUERIES + routes_query.MAX_WAITING_QUERIES
    started = threading.Semaphore(0)
    release = threading.Event()
    watchdog = threading.Timer(WATCHDOG_S, release.set)
    watchdog.daemon = True
    real = routes_query.run_sandboxed

    def long_query(path, sql, limits):
        started.release()
        release.wait()
        return real(path, sql, limits)

    monkeypatch.setattr(routes_query, "run_sandboxed", long_query)
    app = create_app(data_dir)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8003") as client:
            queries = [asyncio.create_task(client.post("/api/v1/query", json={"recording": "story",
                                                                              "sql": "SELECT 1 AS x"}))
                       for _ in range(burst)]
            for _ in range(routes_query.MAX_CONCURRENT_QUERIES):  # the pool is full
                assert await asyncio.to_thread(started.acquire, timeout=WATCHDOG_S)
            health = await client.get("/health")
            listing = await client.get("/api/v1/recordings")
            answered_while_full = not release.is_set()
            release.set()
            return health, listing, answered_while_full, await asyncio.gather(*queries), await client.post(
                "/api/v1/query", json={"recording": "story", "sql": "SELECT 2 AS x"})

    watchdog.start()
    try:
        health, listing, answered_while_full, responses, after = asyncio.run(scenario())
    finally:
        watchdog.cancel()
    assert answered_while_full  # both answered before any long query was let go
    assert health.status_code == 200
    assert listing.status_code == 200 and "story" in [item["id"] for item in listing.json()]
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] * capacity + [503] * (burst - capacity)
    for response in responses:
        if response.status_code == 503:
            assert response.headers["retry-after"] == str(routes_query.RETRY_AFTER_S)
            assert "query pool" in response.json()["detail"]
        else:
            assert response.json()["rows"] == [{"x": 1}]
    assert after.status_code == 200 and after.json()["rows"] == [{"x": 2}]  # every slot was given back
