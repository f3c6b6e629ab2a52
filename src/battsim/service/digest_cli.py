"""``battsim hash FILE`` and ``battsim diff A B``: is this the same recording, and if not, what changed?

    battsim hash golden.duckdb                 # one SHA-256 per table and one for the whole recording
    battsim diff golden.duckdb new.duckdb      # exit 0 the same, 1 different (like diff), 2 bad input
    battsim diff a.duckdb b.duckdb --tolerance 0.001 --json

The digest is of what was recorded, not of the file's bytes (:mod:`battsim.recordings.digest`), so two
runs with the same flags and seed hash the same whatever their batch size, run id or creation time.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import duckdb
import numpy as np
import typer
from rich.markup import escape

from battsim.recordings.diff import RecordingDiff, RowDiff, attached, diff_recordings
from battsim.recordings.digest import recording_digest
from battsim.recordings.format import NotARecordingError, RecordingBusyError, reading
from battsim.service.terminal import fail, stdout

_LONGEST_VALUE = 60  # characters of one value shown side by side (a run's config JSON is thousands)


def hash_command(
    file: Annotated[Path, typer.Argument(metavar="FILE.duckdb", help="The recording to digest.", show_default=False)],
    json_output: Annotated[bool, typer.Option("--json", help="Print the digests as JSON (a golden file's format).")] = False,
) -> None:
    """A content digest of each table of a recording, independent of batch size, file layout, run id and time."""
    try:
        with attached({"a": file}) as connection, reading([file]):
            digest = recording_digest(connection, "a")
    except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
        fail("FILE", escape(str(error)))
    if json_output:
        stdout.print_json(data=digest.to_json())
        return
    width = max(len(name) for name in digest.tables)
    for name, table in sorted(digest.tables.items()):
        _line(f"{table.sha256}  {name:<{width}}  {table.rows:,} rows")
    _line(f"{digest.sha256}  {'recording':<{width}}  (all tables)")


def diff(
    a: Annotated[Path, typer.Argument(metavar="A.duckdb", help="The recording to compare from.", show_default=False)],
    b: Annotated[Path, typer.Argument(metavar="B.duckdb", help="The recording to compare to.", show_default=False)],
    tolerance: Annotated[float, typer.Option(help="Numbers within this (absolute) count as equal.")] = 0.0,
    rows: Annotated[int, typer.Option("--rows", help="Differing rows shown per table, 1-1000.")] = 5,
    json_output: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Compare two recordings table by table; exit 0 when the same, 1 when they differ, 2 on bad input."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        fail("--tolerance", f"{tolerance} must be a finite number at least 0")
    if not 1 <= rows <= 1000:
        fail("--rows", f"{rows} is outside 1-1000")
    try:
        with attached({"a": a, "b": b}) as connection, reading([a, b]):
            result = diff_recordings(connection, tolerance, rows)
    except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
        fail("FILE", escape(str(error)))
    except duckdb.Error as error:
        fail("FILE", escape(str(error).splitlines()[0]))
    if json_output:
        stdout.print_json(json.dumps(_as_json(result, a, b, tolerance), default=_json_value))
    else:
        _print_diff(result, a, b)
    raise typer.Exit(code=0 if result.equal else 1)


def _line(text: str) -> None:
    stdout.print(text, soft_wrap=True, highlight=False, markup=False)


def _shown(value) -> str:
    if isinstance(value, float):
        # A FLOAT column's value as its shortest float32 text (13.537001, not 13.5370007); a DOUBLE's in full.
        narrow = np.float32(value)
        text = str(narrow) if float(narrow) == value or math.isnan(value) else repr(value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = "NULL" if value is None else str(value)
    return text if len(text) <= _LONGEST_VALUE else text[:_LONGEST_VALUE - 1] + "…"


def _row_text(row: RowDiff) -> str:
    key = " ".join(f"{name}={_shown(value)}" for name, value in row.key.items()) or "the row"
    if row.only_in:
        values = ", ".join(f"{name} {_shown(pair[0 if row.only_in == 'a' else 1])}" for name, pair in row.columns.items())
        return f"{key}: only in {row.only_in.upper()}" + (f" ({values})" if values else "")
    return f"{key}: " + ", ".join(f"{name} {_shown(va)} vs {_shown(vb)}" for name, (va, vb) in row.columns.items())


def _print_diff(result: RecordingDiff, a: Path, b: Path) -> None:
    _line(f"A {a}\nB {b}")
    width = max(len(name) for name in result.tables)
    for name, table in result.tables.items():
        counts = f"{_count(table.rows_a)} | {_count(table.rows_b)} rows"
        differ = f", {table.differing_rows:,} rows differ" if table.status == "different" else ""
        _line(f"{name:<{width}}  {table.status:<21}  {counts}{differ}")
        for row in table.first:
            _line(f"  {_row_text(row)}")
    _line("same" if result.equal else "different")


def _count(rows: int | None) -> str:
    return "-" if rows is None else f"{rows:,}"


def _as_json(result: RecordingDiff, a: Path, b: Path, tolerance: float) -> dict:
    return {
        "a": str(a), "b": str(b), "tolerance": tolerance, "equal": result.equal,
        "tables": {name: {"status": t.status, "rows_a": t.rows_a, "rows_b": t.rows_b, "differing_rows": t.differing_rows,
                          "first": [{"key": r.key, "only_in": r.only_in,
                                     "columns": {c: {"a": va, "b": vb} for c, (va, vb) in r.columns.items()}}
                                    for r in t.first]}
                   for name, t in result.tables.items()},
    }


def _json_value(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)
