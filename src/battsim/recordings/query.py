"""SQL over one or more recordings at once, and the result as a table, CSV, JSON or Parquet.

Each file is attached read-only to an in-memory DuckDB under its *run name* (the file name
without ``.duckdb``, made a valid identifier), so one query can compare runs::

    battsim query baseline.duckdb heatwave.duckdb \\
        "SELECT 'baseline' AS run, max(temperature_c) FROM baseline.readings
         UNION ALL SELECT 'heatwave', max(temperature_c) FROM heatwave.readings"

The first file is the default database, so with a single file tables need no prefix. Timestamps come
back in UTC, shown as :mod:`battsim.recordings.presentation` says (ISO 8601 with ``+00:00``, numbers at
their channel's resolution). A recording made before the analysis views existed gets them in memory (the
file is not changed).
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import duckdb
import numpy as np

from battsim.recordings.format import attach_read_only, check_recording
from battsim.recordings.presentation import columns_of, json_value, present_json_row, present_row
from battsim.recordings.schema import quote_identifier
from battsim.recordings.views import VIEW_NAMES, missing_views, view_sql
from battsim.scale import shardset

FORMATS = ("table", "csv", "json", "parquet")
# Catalog names DuckDB reserves, which a run may not be attached under.
_RESERVED = {"memory", "system", "temp", "main", "information_schema", "pg_catalog"}
FETCH_ROWS = 10_000


def run_name(path: str | Path) -> str:
    """The name a file is attached under: its stem as a lower-case SQL identifier (``2026-heat`` -> ``run_2026_heat``)."""
    name = re.sub(r"[^0-9a-zA-Z_]+", "_", Path(path).name.removesuffix(".duckdb")).strip("_").lower() or "run"
    if name[0].isdigit() or name in _RESERVED:
        name = "run_" + name
    return name


def run_names(paths: Sequence[str | Path]) -> list[str]:
    """Attach names for several files, made unique by a numeric suffix (``year``, ``year_2``)."""
    names: list[str] = []
    for path in paths:
        base = name = run_name(path)
        suffix = 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.append(name)
    return names


def attach_checked(connection: duckdb.DuckDBPyConnection, path: str | Path, alias: str,
                   busy: str = "query it when the run ends") -> None:
    """Attach a recording (a file or a shard set) read-only as ``alias``, checked first by every reader's check;
    a file refused is detached again. ``busy`` ends the message for a file a run is still writing."""
    path = Path(path)
    if path.is_dir():  # a shard set (battsim run --workers): its parts as one recording
        shardset.attach_shard_set(connection, path, alias)
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recording")
    attach_read_only(connection, path, alias, busy=busy)
    try:
        check_recording(connection, path, catalog=alias)
    except BaseException:
        connection.execute(f"DETACH {quote_identifier(alias)}")
        raise


def attach_recording(connection: duckdb.DuckDBPyConnection, path: str | Path, alias: str) -> None:
    """Attach a recording read-only as ``alias``, with its analysis views even if the file predates them.

    Such a file is attached under a hidden name instead, and ``alias`` becomes an in-memory catalog
    of views: one per table of the file, plus the analysis views reading the file's tables.
    """
    attach_checked(connection, path, alias)
    if Path(path).is_dir():  # a shard set's catalog has its views already
        return
    relations = [row[0] for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [alias]
    ).fetchall()]
    if not missing_views(connection, alias):
        return
    connection.execute(f"DETACH {quote_identifier(alias)}")
    hidden = f"__file_{alias}"
    attach_read_only(connection, Path(path), hidden, busy="query it when the run ends")
    raw, shown = f"{quote_identifier(hidden)}.main.", f"{quote_identifier(alias)}.main."
    connection.execute(f"ATTACH ':memory:' AS {quote_identifier(alias)}")
    for name in relations:
        if name not in VIEW_NAMES:
            connection.execute(f"CREATE VIEW {shown}{quote_identifier(name)} AS SELECT * FROM {raw}{quote_identifier(name)}")
    for name in VIEW_NAMES:
        connection.execute(f"CREATE VIEW {shown}{name} AS {view_sql(name, raw)}")


def open_recordings(paths: Sequence[str | Path], config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with each recording attached under its run name; the first one is in use."""
    if not paths:
        raise ValueError("give at least one recording")
    connection = duckdb.connect(":memory:", config=config or {})
    try:
        connection.execute("SET TimeZone = 'UTC'")
        for path, name in zip(paths, run_names(paths)):
            attach_recording(connection, path, name)
        connection.execute(f"USE {quote_identifier(run_names(paths)[0])}")
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def spill_privately(paths: Sequence[str | Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """:func:`open_recordings` whose spill files go to a private temporary directory, removed afterwards.

    DuckDB spills an in-memory database's large sorts and joins to ``<cwd>/.tmp`` by default, which fills
    (and litters) whatever directory the user happens to run in; the system's temporary directory
    (``$TMPDIR``) is where scratch files belong, and one per command keeps concurrent runs apart.
    """
    with tempfile.TemporaryDirectory(prefix="battsim-query-") as spill_dir:
        connection = open_recordings(paths, {"temp_directory": spill_dir})
        try:
            yield connection
        finally:
            connection.close()  # before the directory is removed: DuckDB deletes its own files on close


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: Iterator[tuple]


class QueryError(ValueError):
    """SQL refused before it runs: empty, or more than one statement."""


def check_single_statement(sql: str) -> None:
    """Refuse empty SQL and several statements: a query is one statement, so nothing runs unseen after it.

    Raises :class:`QueryError`, or DuckDB's parser error for SQL that does not parse.
    """
    statements = duckdb.extract_statements(sql)
    if not statements:
        raise QueryError("no SQL statement given (e.g. \"SELECT count(*) FROM readings\")")
    if len(statements) > 1:
        raise QueryError(f"{len(statements)} statements given; give one statement (no ';' between statements)")


def execute(connection: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """Run ``sql`` (the last statement's result is returned) and stream its rows."""
    cursor = connection.execute(sql)
    description = cursor.description or []
    types = [str(d[1]) for d in description]
    return QueryResult([d[0] for d in description], types, _rows(cursor, types))


def _rows(cursor: duckdb.DuckDBPyConnection, types: list[str]) -> Iterator[tuple]:
    # Readings are stored as 32-bit floats; shown as doubles they would read 24.80000114440918.
    singles = [i for i, t in enumerate(types) if t == "FLOAT"]
    while batch := cursor.fetchmany(FETCH_ROWS):
        if not singles:
            yield from batch
            continue
        for row in batch:
            row = list(row)
            for i in singles:
                if row[i] is not None:
                    row[i] = float(str(np.float32(row[i])))
            yield tuple(row)


# ------------------------------------------------------------------------------------ output
# Every value is shown as battsim.recordings.presentation says: ISO 8601 UTC times, numbers at their resolution.
def write_csv(result: QueryResult, out: IO[str]) -> int:
    columns = columns_of(result.columns, result.types)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    count = 0
    for row in result.rows:
        writer.writerow(present_row(row, columns))
        count += 1
    return count


def write_json(result: QueryResult, out: IO[str]) -> int:
    """A JSON array of objects, one per row, written as it streams."""
    columns = columns_of(result.columns, result.types)
    out.write("[")
    count = 0
    for row in result.rows:
        out.write(",\n " if count else "\n ")
        out.write(json.dumps(present_json_row(row, columns), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_parquet(connection: duckdb.DuckDBPyConnection, sql: str, out: Path) -> int:
    """The result of ``sql`` as one Parquet file, streamed in Arrow batches (the stored types: UTC timestamps,
    32-bit floats; Parquet readers do their own formatting)."""
    import pyarrow.parquet as pq

    relation = connection.sql(sql)
    if relation is None:
        raise duckdb.InvalidInputException("the statement returns no result to write")
    # DuckDB 2.0 reads a relation as to_arrow_reader; before, record_batch.
    reader = (getattr(relation, "to_arrow_reader", None) or relation.record_batch)(FETCH_ROWS)
    count = 0
    with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
        for batch in reader:
            writer.write_batch(batch)
            count += batch.num_rows
    return count


def table_rows(result: QueryResult, max_rows: int) -> tuple[list[list[str]], bool]:
    """Up to ``max_rows`` rows as text for a table, and whether there were more."""
    columns = columns_of(result.columns, result.types)
    shown: list[list[str]] = []
    for row in result.rows:
        if len(shown) == max_rows:
            return shown, True
        shown.append(["NULL" if v is None else text for v, text in zip(row, present_row(row, columns))])
    return shown, False


def rows_as_objects(columns: Sequence[str], rows: Iterable[tuple]) -> list[dict]:
    return [dict(zip(columns, (json_value(v) for v in row))) for row in rows]
