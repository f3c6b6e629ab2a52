"""Compare two recordings table by table, and say which rows differ and how.

    with attached({"a": "seed1.duckdb", "b": "seed2.duckdb"}) as connection:
        result = diff_recordings(connection, tolerance=1e-3)
    result.equal, result.tables["reading_samples"].first[0]   # the first differing reading, side by side

Tables whose digests (:mod:`battsim.recordings.digest`) are equal are the same. Otherwise rows are paired
by the table's key (a reading by its time and jar, an event by its time, kind and place; rows that share
a key in order of their values) and compared column by column: numbers within ``tolerance`` (absolute)
count as equal, so a table can be "same within tolerance". The run's identity columns are never compared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from battsim.recordings.digest import IGNORED_COLUMNS, stored_tables, table_columns, table_digest
from battsim.recordings.query import attach_checked
from battsim.recordings.schema import quote_identifier as quote

# How rows of a table are paired; a table not listed pairs rows by the order of all their values.
# Readings are compared through the readings view, which names jars by battery_id.
KEYS = {
    "reading_samples": ("readings", ("timestamp", "battery_id")),
    "string_readings": ("string_readings", ("timestamp", "string_key")),
    "ohmic_tests": ("ohmic_tests", ("timestamp", "battery_key", "instrument")),
    "events": ("events", ("timestamp", "kind", "site_id", "string_id", "battery_id")),
    "batteries": ("batteries", ("battery_key",)),
    "sites": ("sites", ("site_key",)),
    "strings": ("strings", ("string_key",)),
    "scenario_catalogue": ("scenario_catalogue", ("bit",)),
}
_NUMERIC = ("FLOAT", "DOUBLE", "REAL", "DECIMAL")
_MISSING = object()


@dataclass(frozen=True)
class RowDiff:
    key: dict  # the key columns' values
    columns: dict  # column -> (value in A, value in B), only the columns that differ
    only_in: str | None = None  # "a" or "b" when the other recording has no such row


@dataclass
class TableDiff:
    table: str
    status: str  # same | same within tolerance | different | only in a | only in b
    rows_a: int | None
    rows_b: int | None
    differing_rows: int = 0
    first: list[RowDiff] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.status in ("same", "same within tolerance")


@dataclass
class RecordingDiff:
    tables: dict[str, TableDiff]

    @property
    def equal(self) -> bool:
        return all(table.equal for table in self.tables.values())


@contextmanager
def attached(paths: Mapping[str, str | Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """One in-memory connection with each recording attached read-only under its alias, each checked."""
    connection = duckdb.connect(":memory:")
    try:
        connection.execute("SET TimeZone = 'UTC'")
        for alias, path in paths.items():
            attach_checked(connection, path, alias, busy="compare it when the run ends")
        yield connection
    finally:
        connection.close()


def _differs(column: str, sql_type: str, tolerance: float) -> str:
    a, b = f"a.{quote(column)}", f"b.{quote(column)}"
    if tolerance > 0 and sql_type.startswith(_NUMERIC):
        return f"NOT ({a} IS NOT DISTINCT FROM {b} OR abs({a} - {b}) <= {tolerance!r})"
    return f"{a} IS DISTINCT FROM {b}"


def _view_columns(connection, catalog: str, relation: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in connection.execute(f"DESCRIBE {quote(catalog)}.main.{quote(relation)}").fetchall()]


def table_diff(connection: duckdb.DuckDBPyConnection, table: str, tolerance: float = 0.0, limit: int = 5) -> TableDiff:
    """Compare ``table`` of the recordings attached as ``a`` and ``b``."""
    in_a, in_b = table in stored_tables(connection, "a"), table in stored_tables(connection, "b")
    if not (in_a and in_b):
        counted = table_digest(connection, table, "a" if in_a else "b").rows
        return TableDiff(table, "only in a" if in_a else "only in b", counted if in_a else None,
                         counted if in_b else None, counted)
    digest_a, digest_b = table_digest(connection, table, "a"), table_digest(connection, table, "b")
    if digest_a == digest_b:
        return TableDiff(table, "same", digest_a.rows, digest_b.rows)
    relation, keys = KEYS.get(table, (table, ()))
    ignored = IGNORED_COLUMNS.get(table, ())
    columns_b = dict(_view_columns(connection, "b", relation))
    compared = [(name, kind) for name, kind in _view_columns(connection, "a", relation)
                if name in columns_b and name not in keys and name not in ignored]
    if relation == table:  # a column only one side has makes every row differ: say so through the digest alone
        compared = [c for c in compared if c[0] in {n for n, _ in table_columns(connection, table, "a")}]
    order = ", ".join(quote(name) for name, _ in compared) or "1"
    partition = f"PARTITION BY {', '.join(quote(k) for k in keys)} " if keys else ""

    def side(catalog: str) -> str:
        return (f"(SELECT *, row_number() OVER ({partition}ORDER BY {order}) AS __n, true AS __present "
                f"FROM {quote(catalog)}.main.{quote(relation)})")

    join = " AND ".join([f"a.{quote(k)} IS NOT DISTINCT FROM b.{quote(k)}" for k in keys] + ["a.__n = b.__n"])
    differs = [_differs(name, kind, tolerance) for name, kind in compared]
    where = " OR ".join(["a.__present IS NULL", "b.__present IS NULL", *differs])
    body = f"FROM {side('a')} a FULL OUTER JOIN {side('b')} b ON {join} WHERE {where}"
    differing = connection.execute(f"SELECT count(*) {body}").fetchall()[0][0]
    if differing == 0:
        return TableDiff(table, "same within tolerance", digest_a.rows, digest_b.rows)
    key_sql = [f"coalesce(a.{quote(k)}, b.{quote(k)}) AS {quote(k)}" for k in keys]
    value_sql = [f"a.{quote(n)} AS {quote('a.' + n)}, b.{quote(n)} AS {quote('b.' + n)}, ({d}) AS {quote('d.' + n)}"
                 for (n, _), d in zip(compared, differs)]
    ordering = ", ".join([*(quote(k) for k in keys), "coalesce(a.__n, b.__n)"])
    cursor = connection.execute(
        f"SELECT a.__present IS NULL AS __only_b, b.__present IS NULL AS __only_a, {', '.join(key_sql + value_sql)} "
        f"{body} ORDER BY {ordering} LIMIT {int(limit)}")
    names = [d[0] for d in cursor.description]
    first = []
    for values in cursor.fetchall():
        row = dict(zip(names, values))
        only = "b" if row["__only_b"] else "a" if row["__only_a"] else None
        changed = {n: (row[f"a.{n}"], row[f"b.{n}"]) for n, _ in compared if only or row[f"d.{n}"]}
        if only:  # a row one side lacks: show its values, not a column of NULLs
            changed = {n: pair for n, pair in changed.items() if pair != (None, None)}
        first.append(RowDiff({k: row[k] for k in keys}, changed, only))
    return TableDiff(table, "different", digest_a.rows, digest_b.rows, differing, first)


def diff_recordings(connection: duckdb.DuckDBPyConnection, tolerance: float = 0.0, limit: int = 5) -> RecordingDiff:
    """Every stored table of the recordings attached as ``a`` and ``b``, compared."""
    tables = sorted(set(stored_tables(connection, "a")) | set(stored_tables(connection, "b")))
    return RecordingDiff({table: table_diff(connection, table, tolerance, limit) for table in tables})
