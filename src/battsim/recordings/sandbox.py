"""Untrusted SQL over one recording: read-only, no files, no network, no settings, bounded.

Every query runs on its own in-memory DuckDB *instance* (settings are per instance, so locking one
down does not touch any other connection of the process) with the recording attached read-only.
It is then locked down in the order engineering-notes.md gives: ``allowed_directories`` (none),
``enable_external_access = false``, ``lock_configuration = true``.

Before it runs, the statement is parsed by DuckDB and refused with a specific reason if it is not a
single SELECT, or if it calls a function that reads files or URLs, runs SQL given as a string,
changes or reveals settings. The lock-down is what actually enforces this; the checks are there so
that a refusal names what was wrong. The result is capped at ``row_limit`` rows (the query is
wrapped in a LIMIT, so DuckDB stops early), and a timer calls ``connection.interrupt()`` when the
query runs past ``time_limit_s`` (DuckDB has no statement timeout).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from battsim.recordings.query import attach_recording, execute

ALIAS = "recording"


# ------------------------------------------------------------------------------------ refusals
class QueryRefused(Exception):
    """User SQL that was not run (or was stopped); ``reason`` says why, ``status`` is the HTTP status."""

    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidQuery(QueryRefused):
    """Empty, too long, not valid SQL, or naming a table, column or function that does not exist."""


class MultipleStatements(InvalidQuery):
    """More than one statement: each request runs exactly one."""


class QueryTimeout(QueryRefused):
    """The query ran past the time limit and was interrupted."""


class QueryTooLarge(QueryRefused):
    """The query needed more memory than the sandbox allows."""


class QueryForbidden(QueryRefused):
    """Something the sandbox does not allow at all."""

    status = 403


class WriteRefused(QueryForbidden):
    """INSERT, UPDATE, CREATE, DROP and the like: recordings are read-only here."""


class FileAccessRefused(QueryForbidden):
    """Reading or writing files or URLs: read_csv/read_parquet/glob, COPY, EXPORT, a path as a table."""


class DatabaseAccessRefused(QueryForbidden):
    """ATTACH, DETACH, USE, CHECKPOINT: the query sees the one recording it was sent to."""


class ExtensionRefused(QueryForbidden):
    """INSTALL and LOAD."""


class SettingsRefused(QueryForbidden):
    """SET, RESET, PRAGMA, CALL, and functions that reveal settings (current_setting, duckdb_settings)."""


class FunctionRefused(QueryForbidden):
    """A table function outside the sandbox's list, or one that runs SQL given as a string."""


_STATEMENTS: dict[str, tuple[type[QueryRefused], str]] = {
    "COPY": (FileAccessRefused, "COPY reads or writes files; the query endpoint has no file access"),
    "EXPORT": (FileAccessRefused, "EXPORT DATABASE writes files; the query endpoint has no file access"),
    "ATTACH": (DatabaseAccessRefused, "ATTACH is not allowed: a query sees only the recording it was sent to"),
    "DETACH": (DatabaseAccessRefused, "DETACH is not allowed: a query sees only the recording it was sent to"),
    "LOAD": (ExtensionRefused, "INSTALL and LOAD are not allowed: extensions can reach files and the network"),
    "SET": (SettingsRefused, "SET, RESET and USE are not allowed: the sandbox's settings are fixed"),
    "VARIABLE_SET": (SettingsRefused, "SET VARIABLE is not allowed: the sandbox's settings are fixed"),
    "PRAGMA": (SettingsRefused, "PRAGMA is not allowed: it changes or reveals database settings"),
    "CALL": (SettingsRefused, "CALL is not allowed: it runs pragmas and maintenance functions (use SELECT)"),
    "EXPLAIN": (InvalidQuery, "EXPLAIN is not supported here; send the SELECT itself"),
    # DuckDB parses a bare PIVOT statement into several statements.
    "MULTI": (InvalidQuery, "PIVOT statements are not supported here; use conditional aggregates, e.g."
                            " count(*) FILTER (WHERE mode = 'discharge')"),
}
_ONLY_SELECT = "the recording is read-only: only SELECT (with WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE) is allowed"

# Table functions a query may use: generators and the catalog of the recording. Any other table
# function is refused (new DuckDB versions add readers; the list fails closed).
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
    "histogram", "histogram_values", "icu_calendar_names", "pg_timezone_names",
    "duckdb_tables", "duckdb_views", "duckdb_columns", "duckdb_schemas", "duckdb_constraints",
    "duckdb_indexes", "duckdb_types", "duckdb_functions", "duckdb_keywords", "pragma_table_info",
})
_FILE_READERS = re.compile(r"^(read_\w+|parquet_\w+|\w+_scan|glob|sniff_csv|iceberg_\w+|delta_\w+|st_\w+|sqlite_\w+)$")
_SQL_RUNNERS = frozenset({"query", "query_table", "json_execute_serialized_sql"})
_SETTINGS_FUNCTIONS = frozenset({
    "current_setting", "getenv", "duckdb_settings", "duckdb_databases", "duckdb_extensions", "duckdb_secrets",
    "which_secret", "duckdb_temporary_files", "duckdb_memory", "pragma_platform", "pragma_database_size",
    "pragma_user_agent", "duckdb_extension_repositories", "duckdb_external_file_cache", "enable_logging",
    "disable_logging", "enable_profiling", "disable_profiling", "checkpoint", "force_checkpoint",
    "truncate_duckdb_logs", "write_log",
})
# Scalar functions that stall a worker without using it (the interrupt cannot cut a sleep short).
_SLEEPS = frozenset({"sleep_ms", "pg_sleep"})


@dataclass(frozen=True)
class SandboxLimits:
    row_limit: int = 10_000
    time_limit_s: float = 30.0
    memory_limit: str = "1GB"
    threads: int = 2
    max_sql_chars: int = 20_000


@dataclass
class SandboxResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    truncated: bool
    elapsed_s: float


# ------------------------------------------------------------------------------------ running
def run_sandboxed(recording: str | Path, sql: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run one untrusted SELECT over ``recording``; raise a :class:`QueryRefused` subclass if it may not run."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidQuery("sql is empty")
    if len(sql) > limits.max_sql_chars:
        raise InvalidQuery(f"sql is {len(sql)} characters; at most {limits.max_sql_chars} are allowed")
    with _locked_down(Path(recording), limits) as connection:
        query = _single_select(connection, sql)
        wrapped = f"SELECT * FROM (\n{query}\n) LIMIT {limits.row_limit + 1}"
        check_functions_and_tables(connection, wrapped)
        began = time.perf_counter()
        rows = _run_with_time_limit(connection, wrapped, limits)
        elapsed_s = time.perf_counter() - began
    columns, types, values = rows
    return SandboxResult(columns, types, values[: limits.row_limit], len(values) > limits.row_limit, elapsed_s)


@contextmanager
def _locked_down(recording: Path, limits: SandboxLimits) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:", config={
        "threads": limits.threads,
        "memory_limit": limits.memory_limit,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
    })
    try:
        connection.execute("SET TimeZone = 'UTC'")
        attach_recording(connection, recording, ALIAS)
        connection.execute(f"USE {ALIAS}")
        connection.execute("SET allowed_directories = []")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        yield connection
    finally:
        connection.close()


def _single_select(connection: duckdb.DuckDBPyConnection, sql: str) -> str:
    """The text of the one SELECT in ``sql``, without its trailing semicolon."""
    try:
        statements = connection.extract_statements(sql)
    except duckdb.Error as error:
        raise InvalidQuery(str(error)) from None
    if not statements:
        raise InvalidQuery("sql holds no statement (only comments or semicolons)")
    if len(statements) > 1:
        raise MultipleStatements(f"sql holds {len(statements)} statements; send one SELECT per request")
    statement = statements[0]
    kind = statement.type.name
    if kind != "SELECT":
        refusal, reason = _STATEMENTS.get(kind, (WriteRefused, f"{kind} is not allowed: {_ONLY_SELECT}"))
        raise refusal(reason)
    return statement.query.strip().rstrip(";").rstrip()


def check_functions_and_tables(connection: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse a SELECT whose syntax tree calls a forbidden function or names a file as a table."""
    try:
        tree = json.loads(connection.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    except RecursionError:
        raise InvalidQuery("the query is nested too deeply to be checked; simplify it") from None
    if tree.get("error"):
        # PIVOT and a few other forms have no serialised tree, so they cannot be checked.
        raise InvalidQuery(f"this statement form cannot be checked by the sandbox ({tree.get('error_message')});"
                           " write it as a plain SELECT (for PIVOT, use conditional aggregates)")
    for node, table_function in _nodes(tree, False):
        if "function_name" in node:
            _check_function(str(node["function_name"]).lower(), table_function)
        if node.get("type") == "BASE_TABLE":
            name = str(node.get("table_name", ""))
            if re.search(r"[/\\:.]", name):
                raise FileAccessRefused(f"'{name}' looks like a file or URL; the query endpoint has no file access")


def _nodes(tree, table_function: bool):
    """Every dict in the tree, with whether it is the function of a table-function reference
    (walked with a stack, not recursion: a deep tree must not overflow Python's)."""
    stack = [(tree, table_function)]
    while stack:
        value, is_table_function = stack.pop()
        if isinstance(value, dict):
            yield value, is_table_function
            for key, child in value.items():
                stack.append((child, key == "function" and value.get("type") == "TABLE_FUNCTION"))
        elif isinstance(value, list):
            stack.extend((child, False) for child in value)


def _check_function(name: str, table_function: bool) -> None:
    if name in _SQL_RUNNERS:
        raise FunctionRefused(f"{name}() runs SQL given as a string, which the sandbox cannot check")
    if name in _SETTINGS_FUNCTIONS:
        raise SettingsRefused(f"{name}() reveals or changes the server's settings and is not allowed")
    if name in _SLEEPS:
        raise FunctionRefused(f"{name}() only waits; it is not allowed")
    if table_function and name not in ALLOWED_TABLE_FUNCTIONS:
        if _FILE_READERS.match(name):
            raise FileAccessRefused(f"{name}() reads files or URLs; the query endpoint has no file access")
        raise FunctionRefused(
            f"table function {name}() is not available here; allowed: {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}"
        )


def _run_with_time_limit(connection: duckdb.DuckDBPyConnection, query: str,
                         limits: SandboxLimits) -> tuple[list[str], list[str], list[tuple]]:
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        connection.interrupt()

    timer = threading.Timer(limits.time_limit_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        result = execute(connection, query)
        rows = list(result.rows)
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran longer than {limits.time_limit_s:g} s and was interrupted") from None
    except duckdb.OutOfMemoryException:
        raise QueryTooLarge(f"the query needs more than the sandbox's {limits.memory_limit} of memory") from None
    except duckdb.PermissionException as error:
        raise QueryForbidden(str(error)) from None
    except duckdb.Error as error:
        if timed_out.is_set():
            raise QueryTimeout(f"the query ran longer than {limits.time_limit_s:g} s and was interrupted") from None
        if "read-only" in str(error) or "locked" in str(error):
            raise WriteRefused(str(error)) from None
        raise InvalidQuery(str(error)) from None
    finally:
        timer.cancel()
        timer.join()
    return result.columns, result.types, rows
