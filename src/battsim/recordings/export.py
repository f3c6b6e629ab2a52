"""Export a recording to Parquet, CSV or JSON, for tools that do not speak DuckDB.

``out`` ending in ``.parquet``, ``.csv`` or ``.json`` is one file of readings. Any other ``out`` is a directory
holding every table: ``readings``, ``events``, ``batteries``, ``sites``, ``runs``, ``strings``,
``string_readings``, ``ohmic_tests``. With
``partition``, readings are written Hive-style by site and local date::

    out/readings/site_id=BKK_DC1/date=2026-01-01/data_0.parquet

Read them back with ``duckdb.sql("FROM read_parquet('out/readings/**/*.parquet', hive_partitioning=true)")``
or ``polars.scan_parquet("out/readings/**/*.parquet", hive_partitioning=True)``; a filter on
``site_id`` or ``date`` then reads only the matching directories. A directory export also holds
``.battsim-export`` (what was exported), which lets ``--overwrite`` replace it; the export is
written beside ``out`` and renamed into place when it is complete. Timestamps are UTC: Parquet keeps the
stored types (timestamps adjusted to UTC); CSV and JSON (an array of objects per table) show values as
:mod:`battsim.recordings.presentation` says (``2026-01-01T00:00:00+00:00``, numbers at their channel's
resolution), as ``battsim query`` does. The readings are those of the
``readings`` view: ids and mode by name, measured values NULL where the sensor dropped out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb

from battsim.engine.battery import MODE_NAMES
from battsim.recordings.export_original import write_original_layout
from battsim.recordings.format import reading
from battsim.recordings.outputs import (
    EXPORT_MARKER,
    OutputError,
    check_out,
    discard,
    replace_directory,
    replace_file,
    staging_path,
)
from battsim.recordings.presentation import presented_sql
from battsim.recordings.query import spill_privately
from battsim.recordings.schema import quote_literal

FORMATS = ("parquet", "csv", "json")
_COPY_OPTIONS = {"parquet": "FORMAT parquet, COMPRESSION zstd", "csv": "FORMAT csv, HEADER true",
                 "json": "FORMAT json, ARRAY true"}
LAYOUTS = ("battsim", "original")
TABLES = ("readings", "events", "batteries", "sites", "runs", "strings", "string_readings", "ohmic_tests")
_ORDER = {"events": "timestamp", "batteries": "battery_key",
          "sites": "site_key", "runs": "id", "strings": "string_key", "string_readings": "timestamp, string_key",
          "ohmic_tests": "timestamp, battery_key"}


class ExportError(ValueError):
    """Export options that cannot be used together, or an ``out`` that cannot be written."""

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True)
class ExportSummary:
    out: Path
    rows: dict[str, int]  # rows written per table
    wall_s: float


def export_recording(recording: str | Path, out: str | Path, format: str = "parquet", partition: bool = False,
                     overwrite: bool = False, layout: str = "battsim") -> ExportSummary:
    """Write ``recording`` to ``out`` (see the module docstring for the layout; ``layout="original"``: the
    original project's CSV files per site, :mod:`battsim.recordings.export_original`)."""
    if layout not in LAYOUTS:
        raise ExportError("layout", f"{layout!r} is not one of {', '.join(LAYOUTS)}")
    out = Path(out)
    if layout == "original":
        if out.suffix in (".parquet", ".csv", ".gz"):
            raise ExportError("out", f"{out.name}: the original layout is a folder of files per site; give a directory")
        _check_out(recording, out, overwrite, single_file=False)
        return _staged(recording, out, single_file=False,
                       write=lambda connection, staged: write_original_layout(connection, staged, recording))
    if format not in FORMATS:
        raise ExportError("format", f"{format!r} is not one of {', '.join(FORMATS)}")
    single_file = out.suffix in (".parquet", ".csv", ".json")
    if single_file and out.suffix != f".{format}":
        raise ExportError("out", f"{out.name} does not end in .{format} (give a .{format} file or a directory)")
    if partition and format != "parquet":
        raise ExportError("partition", "partitioning is for --format parquet")
    if partition and single_file:
        raise ExportError("partition", "a partitioned export is a directory; give --out a directory, not a file")
    _check_out(recording, out, overwrite, single_file)
    options = _COPY_OPTIONS[format]

    def write(connection, staged: Path) -> dict[str, int]:
        if single_file:
            return {"readings": _copy(connection, _readings_select(connection), staged, options)}
        rows: dict[str, int] = {}
        for table in TABLES:
            if table == "readings" and partition:
                rows[table] = _copy(connection, _partitioned_readings(connection), staged / "readings",
                                    f"{options}, PARTITION_BY (site_id, date)")
            else:
                query = _readings_select(connection) if table == "readings" else _select(connection, table)
                rows[table] = _copy(connection, query, staged / f"{table}.{format}", options)
        (staged / EXPORT_MARKER).write_text(json.dumps({"recording": str(recording), "format": format,
                                                        "partition": partition, "rows": rows}) + "\n")
        return rows

    return _staged(recording, out, single_file, write)


def _check_out(recording: str | Path, out: Path, overwrite: bool, single_file: bool) -> None:
    try:
        empty_dir = not single_file and out.is_dir() and not any(out.iterdir())
        check_out(out, overwrite or empty_dir, inputs=[Path(recording)], kind="file" if single_file else "directory")
    except OutputError as error:
        raise ExportError("out", str(error)) from None


def _staged(recording: str | Path, out: Path, single_file: bool,
            write: Callable[[duckdb.DuckDBPyConnection, Path], dict[str, int]]) -> ExportSummary:
    """``write(connection, staged)`` into a file or directory beside ``out``, then renamed into place: a failed
    export leaves ``out`` as it was (and says which ``out`` it could not write)."""
    began = time.perf_counter()
    spill = ExitStack()  # DuckDB's scratch files in a private temporary directory, not <cwd>/.tmp
    connection = spill.enter_context(spill_privately([recording]))
    staged = staging_path(out)
    try:
        with reading([recording]):
            if not single_file:
                staged.mkdir()
            rows = write(connection, staged)
        if single_file:
            replace_file(staged, out)
        else:
            replace_directory(staged, out)
    except (OSError, duckdb.IOException) as error:
        discard(staged)
        raise ExportError("out", f"cannot write {out} ({str(error).splitlines()[0].replace(str(staged), str(out))})") from None
    except BaseException:
        discard(staged)
        raise
    finally:
        spill.close()
    return ExportSummary(out, rows, time.perf_counter() - began)


def _select(connection, table: str) -> str:
    # JSON columns (runs.config, events.detail) as text: Parquet readers other than DuckDB would
    # see JSON-typed columns as raw bytes.
    json_columns = [row[0] for row in connection.execute(f"DESCRIBE {table}").fetchall() if row[1] == "JSON"]
    replace = f" REPLACE ({', '.join(f'{c}::VARCHAR AS {c}' for c in json_columns)})" if json_columns else ""
    return f"SELECT *{replace} FROM {table} ORDER BY {_ORDER[table]}"


def _readings_select(connection) -> str:
    """The rows of the ``readings`` view in stored (time, jar) order, without sorting them.

    The view joins jars to their ids, and a hash join does not keep the order of a parallel scan;
    sorting a year of readings would dominate the export. Jar keys are dense (0..n-1), so ids are
    looked up by position in one-row lists instead, which keeps the scan's order. A view column
    this does not know how to produce falls back to the sorted view.
    """
    samples = {row[0]: row[1] for row in connection.execute("DESCRIBE reading_samples").fetchall()}
    view = [row[0] for row in connection.execute("DESCRIBE readings").fetchall()]
    mode_names = "[" + ", ".join(quote_literal(name) for name in MODE_NAMES) + "]"
    selected = []
    for name in view:
        if name in ("battery_id", "site_id", "string_id"):
            selected.append(f"k.{name}[s.battery_key + 1] AS {name}")
        elif name == "mode":
            selected.append(f"{mode_names}[s.mode + 1] AS mode")
        elif name in samples:
            selected.append(f"s.{name}")
        else:
            return "SELECT * FROM readings ORDER BY timestamp, battery_id"
    return (
        "WITH k AS (SELECT list(battery_id ORDER BY battery_key) AS battery_id, list(site_id ORDER BY battery_key)"
        " AS site_id, list(string_id ORDER BY battery_key) AS string_id FROM batteries) "
        f"SELECT {', '.join(selected)} FROM reading_samples s, k"
    )


def _partitioned_readings(connection) -> str:
    # The local calendar day of the site, as in the analysis views.
    return (f"SELECT r.*, timezone(z.timezone, r.timestamp)::DATE AS date FROM ({_readings_select(connection)}) r "
            "JOIN sites z USING (site_id)")


def _copy(connection, query: str, target: Path, options: str) -> int:
    if "FORMAT parquet" not in options:  # text: times and numbers as every command shows them
        relation = connection.sql(query)
        query = presented_sql(query, list(zip(relation.columns, map(str, relation.types))))
    return connection.execute(f"COPY ({query}) TO {quote_literal(str(target))} ({options})").fetchone()[0]
