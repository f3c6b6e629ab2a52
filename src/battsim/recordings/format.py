"""Is this file a battsim recording, of a format version this code can read? One check for every reader.

The CLI (query, export, report, replay), :func:`battsim.recordings.recording.open_recording` and the
HTTP service all call :func:`check_recording` on a connection before reading anything, so a file that
is not a recording, lacks a table, has no run, or was written by a newer battsim is refused with the
same message everywhere. A file that opens but has a damaged block only shows it when that block is
read: :func:`reading` turns DuckDB's error into :class:`DamagedRecordingError` naming the file.

    verify_recording("year.duckdb")            # raises NotARecordingError / DamagedRecordingError
    with reading(["year.duckdb"]):
        connection.execute("SELECT avg(voltage_v) FROM readings").fetchall()
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from battsim.recordings.schema import FORMAT_VERSION, quote_identifier, quote_literal

# Tables every recording has (recordings/schema.py); a file without them is not a recording.
REQUIRED_TABLES = ("runs", "sites", "batteries", "strings", "reading_samples", "string_readings", "ohmic_tests", "events")

# What DuckDB says when bytes of a file are missing or wrong (a torn copy, a bad disk, a file cut
# short): these are the file's fault, never the query's.
_DAMAGE_MARKERS = ("corrupt", "checksum", "could not read enough bytes", "failed to deserialize",
                   "serialization error", "database has been invalidated")


class NotARecordingError(ValueError):
    """The file is not a battsim recording this version can read; the message names the file and why."""


class DamagedRecordingError(NotARecordingError):
    """The file is (or was) a recording, but part of it cannot be read."""


class RecordingBusyError(RuntimeError):
    """The file is being written (DuckDB allows one writer or many readers, never both)."""


def is_damage(error: BaseException) -> bool:
    """Whether a DuckDB error means the file is damaged (rather than the SQL being wrong)."""
    text = str(error).lower()
    return isinstance(error, duckdb.Error) and any(marker in text for marker in _DAMAGE_MARKERS)


def damaged(path: str | Path, error: BaseException) -> DamagedRecordingError:
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DamagedRecordingError(f"{path}: the file is damaged and cannot be read ({detail}); "
                                 "restore it from a copy or record it again")


def _damaged_file(paths: Sequence[str | Path], error: BaseException) -> str:
    """The file an error is about: the one its message names, else the only one, else all of them."""
    text = str(error)
    named = [str(p) for p in paths if str(Path(p).resolve()) in text or str(p) in text]
    if named or len(paths) == 1:
        return (named or [str(paths[0])])[0]
    return "one of " + ", ".join(str(p) for p in paths)


@contextmanager
def reading(paths: Sequence[str | Path]) -> Iterator[None]:
    """Turn a DuckDB error that means a damaged file into :class:`DamagedRecordingError` naming it."""
    try:
        yield
    except duckdb.Error as error:
        if is_damage(error):
            raise damaged(_damaged_file(paths, error), error) from None
        raise


def check_recording(connection: duckdb.DuckDBPyConnection, path: str | Path, catalog: str | None = None) -> None:
    """Refuse, with :class:`NotARecordingError` naming ``path``, a database (``catalog``, default the one in
    use) that lacks a recording's tables, has no run or several, or has a format version other than ours."""
    catalog_sql = "?" if catalog is not None else "current_database()"
    with reading([path]):
        tables = {row[0] for row in connection.execute(
            f"SELECT table_name FROM information_schema.tables WHERE table_catalog = {catalog_sql}",
            [catalog] if catalog is not None else None).fetchall()}
        missing = [name for name in REQUIRED_TABLES if name not in tables]
        if missing:
            raise NotARecordingError(f"{path}: not a battsim recording (no {', '.join(missing)} table)")
        runs = '"' + catalog.replace('"', '""') + '".main.runs' if catalog is not None else "runs"
        columns = {row[0] for row in connection.execute(f"DESCRIBE {runs}").fetchall()}
        if "format_version" not in columns:
            raise NotARecordingError(f"{path}: not a battsim recording (runs has no format_version)")
        versions = [row[0] for row in connection.execute(f"SELECT format_version FROM {runs}").fetchall()]
    if not versions:
        raise NotARecordingError(f"{path}: the runs table is empty (the run never started recording)")
    if len(versions) > 1:
        raise NotARecordingError(f"{path}: the runs table has {len(versions)} rows; a recording has one run")
    if versions[0] != FORMAT_VERSION:
        newer = isinstance(versions[0], int) and versions[0] > FORMAT_VERSION
        raise NotARecordingError(
            f"{path}: recording format version {versions[0]}, but this battsim reads version {FORMAT_VERSION}"
            + (" (written by a newer battsim: upgrade to read it)" if newer else ""))


def open_error(path: str | Path, error: duckdb.Error) -> NotARecordingError:
    """What to say when DuckDB cannot open ``path`` at all (a lock is not this: callers check for it first)."""
    if "not a valid duckdb database file" in str(error).lower():
        return NotARecordingError(f"{path}: not a DuckDB file")
    if is_damage(error):
        return damaged(path, error)
    return NotARecordingError(f"{path}: cannot be opened as a DuckDB file ({str(error).splitlines()[0]})")


def connect_read_only(path: str | Path, busy: str = "it is being written; read it when the run ends"):
    """A read-only DuckDB connection to the file at ``path``, not yet checked; raises FileNotFoundError,
    NotARecordingError, or RecordingBusyError (``path: busy``) when another process is writing it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recording")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        text = str(error).lower()
        if "lock" in text or "different configuration" in text:
            raise RecordingBusyError(f"{path}: {busy}") from None
        raise open_error(path, error) from None


def verify_recording(path: str | Path) -> None:
    """Open ``path`` read-only and :func:`check_recording` it; raises as :func:`connect_read_only` does.
    A directory is checked as a shard set (its manifest and every part written)."""
    if Path(path).is_dir():
        from battsim.scale.shardset import open_shard_set  # scale reads recordings through this module

        open_shard_set(path).close()
        return
    connection = connect_read_only(path)
    try:
        check_recording(connection, path)
    finally:
        connection.close()


def attach_read_only(connection: duckdb.DuckDBPyConnection, path: Path, alias: str, busy: str) -> None:
    """ATTACH a recording read-only as ``alias``; RecordingBusyError (``busy`` says what to do) when it is locked."""
    try:
        connection.execute(f"ATTACH {quote_literal(str(path))} AS {quote_identifier(alias)} (READ_ONLY)")
    except duckdb.Error as error:
        message = str(error).lower()
        # Another process holds the file's lock, or this process has it open for writing (a live run).
        if "lock" in message or "already attached" in message:
            raise RecordingBusyError(f"{path}: it is being written; {busy}") from None
        raise open_error(path, error) from None
