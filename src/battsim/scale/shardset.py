"""A shard set opened as one recording: every reader goes through :func:`attach_shard_set`.

Each part file is attached read-only under a hidden name and checked like any recording; the set's own
catalog (in memory) then holds what a recording holds, over all parts: one view per stored table, the
``readings`` view and the analysis views (recordings/views.py) as the parts' own one after another, and
a one-row ``runs`` table for the whole set (status ``complete`` only when every planned part is). Every
part numbers its sites, strings and jars from 0, so the set's views add each part's offset to the keys
(as UINTEGER: a set may hold more than the 65,535 jars one file can). ``shard_parts`` lists the parts:
which file, its catalog, its status.

    connection = open_shard_set("fleet/")            # in-memory DuckDB, the set in use
    connection.sql("SELECT count(*) FROM readings")  # every part's readings
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from battsim.recordings.format import NotARecordingError, attach_read_only, check_recording
from battsim.recordings.schema import quote_identifier
from battsim.recordings.views import VIEW_NAMES
from battsim.scale.manifest import MANIFEST_NAME, is_shard_set, read_config, read_manifest

__all__ = ["attach_shard_set", "is_shard_set", "open_shard_set", "part_catalogs", "shard_set_catalog"]

PARTS_TABLE = "shard_parts"
# The key columns a part numbers from 0, by the table that defines them.
_KEYS = {"battery_key": "batteries", "site_key": "sites", "string_key": "strings"}
# Tables every part holds the same rows of (not a per-site table): taken from the first part.
_SHARED_TABLES = ("scenario_catalogue",)


def _attach_part(connection: duckdb.DuckDBPyConnection, path: Path, catalog: str) -> None:
    attach_read_only(connection, path, catalog, busy="read the shard set when the run ends")
    check_recording(connection, path, catalog=catalog)


def attach_shard_set(connection: duckdb.DuckDBPyConnection, directory: str | Path, alias: str) -> None:
    """Attach the shard set at ``directory`` as the catalog ``alias`` (see the module docstring); ``alias`` may
    be the connection's own in-memory database."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    planned = manifest["parts"]
    present = [(index, part) for index, part in enumerate(planned) if (directory / part["file"]).is_file()]
    if not present:
        raise NotARecordingError(f"{directory}: no part of the shard set was written (see {MANIFEST_NAME})")
    catalogs = []
    for index, part in present:
        catalog = f"__{alias}_part_{index:03d}"
        _attach_part(connection, directory / part["file"], catalog)
        catalogs.append(catalog)
    if alias != connection.execute("SELECT current_database()").fetchall()[0][0]:
        connection.execute(f"ATTACH ':memory:' AS {quote_identifier(alias)}")
    shown = f"{quote_identifier(alias)}.main."
    offsets = _offsets(connection, catalogs)
    tables = [row[0] for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_type = 'BASE TABLE' "
        "AND table_schema = 'main' ORDER BY table_name", [catalogs[0]]).fetchall()]
    for table in tables:
        if table == "runs":
            continue
        sources = catalogs[:1] if table in _SHARED_TABLES else catalogs
        described = f"DESCRIBE {quote_identifier(sources[0])}.main.{quote_identifier(table)}"
        columns = [row[0] for row in connection.execute(described).fetchall()]
        selects = []
        for catalog in sources:
            remapped = [f"{quote_identifier(c)}::UINTEGER + {offsets[catalog][c]} AS {quote_identifier(c)}"
                        for c in columns if c in _KEYS]
            replace = f" REPLACE ({', '.join(remapped)})" if remapped else ""
            selects.append(f"SELECT *{replace} FROM {quote_identifier(catalog)}.main.{quote_identifier(table)}")
        connection.execute(f"CREATE VIEW {shown}{quote_identifier(table)} AS " + " UNION ALL ".join(selects))
    # The readings view and the analysis views are per jar, string or outage, and a site's strings and jars
    # are all in one part: each is the parts' own, one after another (the events' insertion order, which
    # the alarm views go by, exists only within a part).
    for name in ("readings", *VIEW_NAMES):
        connection.execute(f"CREATE VIEW {shown}{quote_identifier(name)} AS " + " UNION ALL ".join(
            f"SELECT * FROM {quote_identifier(catalog)}.main.{quote_identifier(name)}" for catalog in catalogs))
    _create_runs(connection, shown, catalogs, manifest, read_config(directory, manifest),
                 complete=len(present) == len(planned))
    connection.execute(f"CREATE TABLE {shown}{PARTS_TABLE} (part INTEGER, file VARCHAR, catalog VARCHAR, "
                       "manifest_status VARCHAR, status VARCHAR, jars INTEGER, first_site VARCHAR, last_site VARCHAR)")
    by_index = dict(zip([index for index, _ in present], catalogs))
    for index, part in enumerate(planned):
        catalog = by_index.get(index)
        status = "missing" if catalog is None else connection.execute(
            f"SELECT CASE status WHEN 'complete' THEN 'complete' ELSE 'incomplete' END FROM {quote_identifier(catalog)}.main.runs"
        ).fetchall()[0][0]
        connection.execute(f"INSERT INTO {shown}{PARTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [index, part["file"], catalog, part["status"], status, part.get("jars"),
                            part.get("first_site"), part.get("last_site")])


def _offsets(connection: duckdb.DuckDBPyConnection, catalogs: list[str]) -> dict[str, dict[str, int]]:
    """What each part's keys are shifted by: the keys every part before it used (its largest key + 1)."""
    offsets, running = {}, dict.fromkeys(_KEYS, 0)
    for catalog in catalogs:
        offsets[catalog] = dict(running)
        for column, table in _KEYS.items():
            largest = connection.execute(f"SELECT max({column}) FROM {quote_identifier(catalog)}.main.{table}").fetchall()[0][0]
            running[column] += 0 if largest is None else int(largest) + 1
    return offsets


def _create_runs(connection, shown: str, catalogs: list[str], manifest: dict, config: dict, complete: bool) -> None:
    """The set's one run: the manifest's identity and configuration, the parts' progress added up."""
    union = " UNION ALL ".join(f"SELECT * FROM {quote_identifier(catalog)}.main.runs" for catalog in catalogs)
    connection.execute(f"CREATE TABLE {shown}runs AS SELECT * FROM ({union}) LIMIT 0")
    connection.execute(
        f"""INSERT INTO {shown}runs SELECT ?, any_value(seed), ?::JSON, min(start), max("end"), any_value(interval_s),
            CASE WHEN ? AND bool_and(status = 'complete') THEN 'complete' ELSE 'incomplete' END,
            any_value(version), any_value(format_version), ?, sum(readings), max(ticks), ?, min(created_at)
            FROM ({union})""",
        [manifest.get("run_id"), json.dumps(config, default=str), complete,
         manifest.get("preset"), float(manifest.get("wall_seconds") or 0.0)])


def open_shard_set(directory: str | Path, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose own database is the shard set at ``directory`` (so its cursors see it too)."""
    connection = duckdb.connect(":memory:", config=config or {})
    try:
        attach_shard_set(connection, directory, connection.execute("SELECT current_database()").fetchall()[0][0])
    except BaseException:
        connection.close()
        raise
    return connection


def shard_set_catalog(connection: duckdb.DuckDBPyConnection, catalog: str | None = None) -> bool:
    """Whether ``catalog`` (default: the one in use) is a shard set attached by :func:`attach_shard_set`."""
    return bool(connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = coalesce(?, current_database()) "
        "AND table_schema = 'main' AND table_name = ?", [catalog, PARTS_TABLE]).fetchall()[0][0])


def part_catalogs(connection: duckdb.DuckDBPyConnection, catalog: str | None = None) -> list[str]:
    """The catalogs of the parts written, in part order, of the shard set attached as ``catalog``."""
    source = f"{quote_identifier(catalog)}.main.{PARTS_TABLE}" if catalog else PARTS_TABLE
    return [row[0] for row in connection.execute(
        f"SELECT catalog FROM {source} WHERE catalog IS NOT NULL ORDER BY part").fetchall()]
