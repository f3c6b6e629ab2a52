"""A recording's content digest: what a run recorded, not how the file holds it.

    digest = recording_digest(connection)       # one open recording (file or in memory)
    digest.tables["events"].rows, digest.tables["events"].sha256, digest.sha256

Each stored table (the views are derived from them) gets a SHA-256 over its rows taken as a set: every
row is written as text (timestamps as epoch microseconds, so the session's time zone does not matter;
NULL distinct from any value), hashed with MD5 inside DuckDB, and the 128-bit row hashes are summed.
A sum does not depend on row order, so the digest is the same whatever the batch or flush size, the
writer thread's timing or DuckDB's block layout, and duplicate rows still count (a XOR would cancel
them). The run's identity and wall clock are left out: ``runs.id``, ``created_at``, ``wall_seconds``
and ``version`` (battsim's version: a release that records the same data gives the same digest;
``format_version`` stays in). Everything else, the config JSON included, is covered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb

from battsim.recordings.schema import quote_identifier
from battsim.scale import shardset

# Columns that say which run or when it was made, never what it simulated (see the module docstring).
IGNORED_COLUMNS = {"runs": ("id", "created_at", "wall_seconds", "version")}
DIGEST_FORMAT = 1  # bump when the row text or the combination changes: golden files then say so
# Control characters written as chr() in the SQL: DuckDB before 2.0 refuses a NUL byte in query text.
_NULL = "chr(0)"  # stands for NULL in a row's text (no value casts to it)
_SEPARATOR = "chr(31)"  # the unit separator between a row's fields


@dataclass(frozen=True)
class TableDigest:
    rows: int
    sha256: str


@dataclass(frozen=True)
class RecordingDigest:
    tables: dict[str, TableDigest]

    @property
    def sha256(self) -> str:
        """One digest of every table: equal exactly when every table's is."""
        text = "\n".join(f"{name} {table.rows} {table.sha256}" for name, table in sorted(self.tables.items()))
        return hashlib.sha256(f"battsim-digest {DIGEST_FORMAT}\n{text}".encode()).hexdigest()

    def to_json(self) -> dict:
        return {"digest_format": DIGEST_FORMAT, "sha256": self.sha256,
                "tables": {name: {"rows": t.rows, "sha256": t.sha256} for name, t in sorted(self.tables.items())}}

    @classmethod
    def from_json(cls, data: dict) -> RecordingDigest:
        if data.get("digest_format") != DIGEST_FORMAT:
            raise ValueError(f"digest_format {data.get('digest_format')!r}; this battsim writes {DIGEST_FORMAT}")
        return cls({name: TableDigest(int(t["rows"]), str(t["sha256"])) for name, t in data["tables"].items()})


def stored_tables(connection: duckdb.DuckDBPyConnection, catalog: str | None = None) -> list[str]:
    """The recording's base tables (not its views), by name; of a shard set, its parts' tables."""
    if shardset.shard_set_catalog(connection, catalog):
        catalog = shardset.part_catalogs(connection, catalog)[0]
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema = 'main' "
        "AND table_catalog = coalesce(?, current_database()) ORDER BY table_name", [catalog]).fetchall()
    return [row[0] for row in rows]


def table_columns(connection: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> list[tuple[str, str]]:
    """``(name, type)`` of the columns a digest covers, in the table's order."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main' "
        "AND table_catalog = coalesce(?, current_database()) ORDER BY ordinal_position", [table, catalog]).fetchall()
    return [(name, kind) for name, kind in rows if name not in IGNORED_COLUMNS.get(table, ())]


def _field_text(column: str, sql_type: str) -> str:
    value = quote_identifier(column)
    if sql_type.startswith("TIMESTAMP"):
        value = f"epoch_us({value})"
    return f"coalesce(CAST({value} AS VARCHAR), {_NULL})"


def table_digest(connection: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> TableDigest:
    """The digest of one table; of a shard set, over the rows of every part's table as they are stored
    (the sums simply add up), so a set's digest depends on its parts, which depend on the fleet and the
    part size, never on the number of workers (scale/plan.py)."""
    catalogs = [catalog]
    if shardset.shard_set_catalog(connection, catalog):
        catalogs = shardset.part_catalogs(connection, catalog)
    columns = table_columns(connection, table, catalogs[0])
    row_text = f" || {_SEPARATOR} || ".join(_field_text(name, kind) for name, kind in columns) or "''"
    rows = upper = lower = 0
    for part in catalogs:
        source = f"{quote_identifier(part)}.main.{quote_identifier(table)}" if part else quote_identifier(table)
        # Two 64-bit halves of each row's MD5, summed exactly (HUGEINT holds 2^64 rows' worth).
        counted = connection.execute(
            f"SELECT count(*), coalesce(sum(md5_number_upper(t)::HUGEINT), 0), coalesce(sum(md5_number_lower(t)::HUGEINT), 0) "
            f"FROM (SELECT {row_text} AS t FROM {source})").fetchall()[0]
        rows, upper, lower = rows + counted[0], upper + counted[1], lower + counted[2]
    header = ",".join(f"{name}:{kind}" for name, kind in columns)
    return TableDigest(rows, hashlib.sha256(f"{header}\n{rows}\n{upper}\n{lower}".encode()).hexdigest())


def recording_digest(connection: duckdb.DuckDBPyConnection, catalog: str | None = None) -> RecordingDigest:
    """The digest of every stored table of the recording on ``connection`` (or its attached ``catalog``)."""
    return RecordingDigest({table: table_digest(connection, table, catalog) for table in stored_tables(connection, catalog)})
