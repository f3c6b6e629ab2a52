"""``POST /api/v1/query``: read-only, sandboxed SQL over a recording in the service's data directory.

    curl -s localhost:8003/api/v1/query -H 'content-type: application/json' \\
         -d '{"recording": "year", "sql": "SELECT site_id, max(temperature_c) FROM readings GROUP BY ALL"}'

A recording is named by its file name without ``.duckdb`` or by its run id. Each query runs on its
own locked-down DuckDB instance (:mod:`battsim.recordings.sandbox`); a refusal is a 400 (not a
query it can run: bad SQL, several statements, too slow) or 403 (not allowed: files, network,
settings, writes, extensions) whose ``detail`` says why, and a result over the byte cap is a 422. A
recording still being written by a live simulation is a 409: query it once the simulation is stopped.

Queries run on the app's own pool of :data:`MAX_CONCURRENT_QUERIES` threads, never on the
threads that serve the other endpoints; up to :data:`MAX_WAITING_QUERIES` more wait their turn (on
the event loop, holding no thread), and beyond that a request is refused at once with a 503 and
``Retry-After``. So a burst of long queries delays only other queries.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from battsim.recordings.format import RecordingBusyError
from battsim.recordings.query import rows_as_objects
from battsim.recordings.recording import NotARecordingError
from battsim.recordings.sandbox import QueryRefused, SandboxLimits, run_sandboxed

RECORDING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
# Queries run at once per app; each may use SandboxLimits.threads cores (2 x 2 on a 2-core machine
# already saturates it) and SandboxLimits.memory_limit.
MAX_CONCURRENT_QUERIES = 2
# Queries admitted beyond those, waiting in order; at most 2 rounds of the time limit before each runs.
MAX_WAITING_QUERIES = 4
# Seconds a refused client is told to wait: most queries take milliseconds; a slot frees within the time limit.
RETRY_AFTER_S = 1


class UnknownRecordingError(LookupError):
    pass


def within(data_dir: Path, path: Path) -> bool:
    """Whether ``path`` is in ``data_dir`` once symlinks are followed (one pointing elsewhere is not served)."""
    return path.resolve().is_relative_to(data_dir.resolve())


def find_recording(data_dir: Path, recording_id: str) -> Path:
    """The file of a recording in ``data_dir``, by file name (``.duckdb`` optional) or by run id."""
    if not RECORDING_ID.match(recording_id):
        raise ValueError(f"recording {recording_id[:60]!r} is not a recording id (letters, digits, '_', '-', '.';"
                         " no path)")
    stem = recording_id.removesuffix(".duckdb")
    candidate = data_dir / f"{stem}.duckdb"
    if candidate.is_file() and within(data_dir, candidate):
        return candidate
    for path in sorted(data_dir.glob("*.duckdb")):
        if within(data_dir, path) and _run_id(path) == recording_id:
            return path
    raise UnknownRecordingError(f"no recording {recording_id!r} in the data directory")


def _run_id(path: Path) -> str | None:
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("ATTACH ? AS r (READ_ONLY)", [str(path)])
        return connection.execute("SELECT id FROM r.runs").fetchone()[0]
    except (duckdb.Error, TypeError):
        return None  # being written, or not a recording
    finally:
        connection.close()


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recording: str = Field(description="The recording: its file name in the data directory without .duckdb, "
                                       "or its run id.", examples=["year"])
    sql: str = Field(description="One SELECT (WITH, VALUES, DESCRIBE, SHOW and SUMMARIZE too) over the "
                                 "recording's tables and views.",
                     examples=["SELECT string_id, start, duration_s, ah_delivered, lvd_reached FROM outage_autonomy"])


class QueryResponse(BaseModel):
    recording: str
    columns: list[str]
    types: list[str]
    rows: list[dict[str, Any]] = Field(description="One object per row; times are ISO 8601 in UTC.")
    row_count: int
    truncated: bool = Field(description="True when the result had more rows than row_limit; only the first "
                                        "row_limit are returned.")
    row_limit: int
    result_bytes: int = Field(description="Size of `rows` as sent (compact JSON, UTF-8); a result above "
                                          "max_result_bytes is refused with a 422.")
    max_result_bytes: int
    elapsed_ms: float


class Queries:
    """The read-only SQL over the recordings in ``data_dir`` (``app.state.queries``): its own pool of threads
    and the admission of queries to it."""

    def __init__(self, data_dir: str | Path, limits: SandboxLimits = SandboxLimits()):
        self.data_dir = Path(data_dir)
        self.limits = limits
        self.pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_QUERIES, thread_name_prefix="battsim-query")
        # Admitted queries (running or waiting); released when the pool is done with one, even if its client left.
        self.admitted = threading.BoundedSemaphore(MAX_CONCURRENT_QUERIES + MAX_WAITING_QUERIES)

    async def submit(self, request: QueryRequest) -> Response:
        if not self.admitted.acquire(blocking=False):
            raise HTTPException(503, headers={"Retry-After": str(RETRY_AFTER_S)},
                                detail=f"{MAX_CONCURRENT_QUERIES} queries are running and {MAX_WAITING_QUERIES} are"
                                       f" waiting (the query pool's limit); retry after {RETRY_AFTER_S} s")
        try:
            future = self.pool.submit(self.answer, request)
        except BaseException:
            self.admitted.release()
            raise
        future.add_done_callback(lambda _: self.admitted.release())
        return await asyncio.wrap_future(future)

    def answer(self, request: QueryRequest) -> Response:
        """Find the recording and run the query, on a pool thread (both open files)."""
        try:
            path = find_recording(self.data_dir, request.recording)
        except ValueError as error:
            raise HTTPException(400, detail=str(error)) from None
        except UnknownRecordingError as error:
            raise HTTPException(404, detail=str(error)) from None
        limits = self.limits
        try:
            result = run_sandboxed(path, request.sql, limits)
        except QueryRefused as refusal:
            raise HTTPException(refusal.status, detail=refusal.reason) from None
        except RecordingBusyError:
            raise HTTPException(409, detail=f"recording {request.recording!r} is still being written; "
                                            "query it when its run has ended") from None
        except (NotARecordingError, FileNotFoundError):
            # Not the error's own text: it holds the server's path.
            raise HTTPException(404, detail=f"{request.recording!r} is not a battsim recording") from None
        body = {  # QueryResponse's fields (the model documents the response; the rows are already plain JSON)
            "recording": request.recording, "columns": result.columns, "types": result.types,
            "rows": rows_as_objects(result.columns, result.rows), "row_count": len(result.rows),
            "truncated": result.truncated, "row_limit": limits.row_limit, "result_bytes": result.result_bytes,
            "max_result_bytes": limits.max_result_bytes, "elapsed_ms": round(result.elapsed_s * 1e3, 3),
        }
        # Encoded here, on the pool thread, not on the event loop: a result can be megabytes.
        return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


def queries_of(connection: HTTPConnection) -> Queries:
    return connection.app.state.queries


router = APIRouter(prefix="/api/v1", tags=["analysis"])


@router.post("/query", response_model=QueryResponse, summary="Read-only SQL over a recording",
             responses={400: {"description": "Not a query the sandbox can run (the detail says why)"},
                        403: {"description": "Not allowed: file, network, settings, writes, extensions"},
                        404: {"description": "No such recording"},
                        409: {"description": "The recording is still being written"},
                        422: {"description": "The result is larger than the byte cap (max_result_bytes)"},
                        503: {"description": f"{MAX_CONCURRENT_QUERIES} queries running and "
                                             f"{MAX_WAITING_QUERIES} waiting; retry after Retry-After seconds"}})
async def query(request: QueryRequest, queries: Annotated[Queries, Depends(queries_of)]) -> Response:
    return await queries.submit(request)
