"""Untrusted SQL over one recording: read-only, no files, no network, no settings, bounded.

Every query runs on its own in-memory DuckDB *instance* (settings are per instance, so locking one
down does not touch any other connection of the process) with the recording attached read-only.
It is then locked down in the order engineering-notes.md gives: ``allowed_directories`` (none),
``enable_external_access = false``, ``lock_configuration = true``.

Before it runs, the statement is checked twice, both times by DuckDB itself:

1. its syntax tree (``json_serialize_sql``): a single SELECT that calls no function reading files or
   URLs, running SQL given as a string, or changing or revealing settings, so that a refusal names
   what the user wrote;
2. its bound plan (``EXPLAIN (FORMAT JSON)``), an allow-list that fails closed: every table the plan
   scans must belong to the recording and every table function must be one of
   :data:`ALLOWED_TABLE_FUNCTIONS`. This is what catches the catalog *views* and macros over
   revealing functions (``duckdb_databases``, ``pragma_database_list``, ``pg_settings``, ...), which
   the syntax tree shows only as table names.

The lock-down is the last line. Spilling to disk goes to a private directory inside the recording's
directory (the service's data dir), capped by ``max_temp_size`` and removed afterwards; without one,
spilling is off (DuckDB's default for an in-memory instance would be ``<cwd>/.tmp``, uncapped). The
result is capped at ``row_limit`` rows (the query is wrapped in a LIMIT, so DuckDB stops early, and
the result says it was truncated) and at ``max_result_bytes`` of JSON (refused: a partial row set cut
by size would look complete), and a timer calls ``connection.interrupt()`` when the query runs past
``time_limit_s`` (DuckDB has no statement timeout).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from battsim.recordings.query import attach_recording, execute, json_value

ALIAS = "recording"
# Catalogs holding the recording's tables: the file, or the hidden name it is attached under when its
# analysis views are made in memory (query.attach_recording).
_RECORDING_CATALOGS = frozenset({ALIAS, f"__file_{ALIAS}"})
# Where queries spill, inside the recording's directory; each query gets its own subdirectory (two
# DuckDB instances spilling into one directory overwrite each other's files).
SPILL_DIRECTORY = ".query-spill"


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
    """The query needed more memory (and spill space) than the sandbox allows."""


class ResultTooLarge(QueryRefused):
    """The result's rows encode to more JSON than ``max_result_bytes``."""

    status = 422


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
    "COPY_DATABASE": (DatabaseAccessRefused, "COPY FROM DATABASE is not allowed: a query sees only its recording"),
    "DETACH": (DatabaseAccessRefused, "DETACH is not allowed: a query sees only the recording it was sent to"),
    "LOAD": (ExtensionRefused, "INSTALL and LOAD are not allowed: extensions can reach files and the network"),
    "EXTENSION": (ExtensionRefused, "extension statements are not allowed: extensions can reach files and the network"),
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

# Table functions a query may use, by name in the query and in its plan: generators and the
# catalog's names and types (SHOW, DESCRIBE, information_schema and pg_catalog's pg_class/pg_namespace
# read these; none shows a path, a setting or a value outside the recording). Any other table function
# is refused, whether called or reached through a view or macro (new DuckDB versions add readers and
# system functions; the list fails closed).
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
    "histogram", "histogram_values", "icu_calendar_names", "pg_timezone_names",
    "duckdb_tables", "duckdb_views", "duckdb_columns", "duckdb_schemas", "duckdb_constraints",
    "duckdb_indexes", "duckdb_sequences", "duckdb_types", "duckdb_functions", "duckdb_keywords",
    "pragma_table_info",
})
# Plan leaves that read no table: constants, VALUES, CTEs, DESCRIBE's column list, an empty result.
_PLAN_LEAVES_WITHOUT_TABLE = frozenset({
    "DUMMY_SCAN", "EMPTY_RESULT", "COLUMN_DATA_SCAN", "EXPRESSION_SCAN", "CHUNK_SCAN", "DELIM_SCAN",
    "CTE_SCAN", "REC_CTE_SCAN",
})
_FILE_READERS = re.compile(r"^(read_\w+|parquet_\w+|\w+_scan|glob|sniff_csv|iceberg_\w+|delta_\w+|st_\w+|sqlite_\w+)$")
_SQL_RUNNERS = frozenset({"query", "query_table", "json_execute_serialized_sql"})
# Functions that reveal paths, settings or the process (checked by name so that the refusal says so;
# the table functions among them are also outside the plan's allow-list). Audited on DuckDB 2.0.1's
# duckdb_functions().
_SETTINGS_FUNCTIONS = frozenset({
    "current_setting", "getenv", "duckdb_settings", "duckdb_databases", "duckdb_extensions", "duckdb_secrets",
    "which_secret", "duckdb_temporary_files", "duckdb_memory", "pragma_platform", "pragma_database_size",
    "pragma_user_agent", "duckdb_extension_repositories", "duckdb_external_file_cache", "enable_logging",
    "disable_logging", "enable_profiling", "disable_profiling", "checkpoint", "force_checkpoint",
    "truncate_duckdb_logs", "write_log", "pragma_database_list", "pragma_storage_info", "pragma_metadata_info",
    "pragma_version", "pragma_show", "duckdb_logs", "duckdb_logs_parsed", "duckdb_log_contexts",
    "duckdb_profiling_settings", "duckdb_eviction_queues", "duckdb_external_resources", "duckdb_variables",
    "duckdb_prepared_statements", "duckdb_connection_count", "duckdb_approx_database_count",
    "duckdb_live_query_metrics", "get_block_size",
})
# Scalar functions that stall a worker without using it (the interrupt cannot cut a sleep short).
_SLEEPS = frozenset({"sleep_ms", "pg_sleep"})


@dataclass(frozen=True)
class SandboxLimits:
    row_limit: int = 10_000
    time_limit_s: float = 30.0
    memory_limit: str = "1GB"
    # DuckDB's max_temp_directory_size: what one query may spill to disk before it is refused.
    max_temp_size: str = "1GB"
    # The rows' JSON (as sent: compact, UTF-8); 10,000 rows of every readings column is about 3.5 MB.
    max_result_bytes: int = 16 * 2**20
    threads: int = 2
    max_sql_chars: int = 20_000


@dataclass
class SandboxResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    truncated: bool
    elapsed_s: float
    result_bytes: int


# ------------------------------------------------------------------------------------ running
def run_sandboxed(recording: str | Path, sql: str, limits: SandboxLimits = SandboxLimits()) -> SandboxResult:
    """Run one untrusted SELECT over ``recording``; raise a :class:`QueryRefused` subclass if it may not run."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidQuery("sql is empty")
    if len(sql) > limits.max_sql_chars:
        raise InvalidQuery(f"sql is {len(sql)} characters; at most {limits.max_sql_chars} are allowed")
    recording = Path(recording)
    with _spill_directory(recording.parent) as spill, _locked_down(recording, limits, spill) as connection:
        query = _single_select(connection, sql)
        wrapped = f"SELECT * FROM (\n{query}\n) LIMIT {limits.row_limit + 1}"
        check_functions_and_tables(connection, wrapped)
        check_plan(connection, wrapped)
        began = time.perf_counter()
        columns, types, rows, truncated, result_bytes = _run_with_time_limit(connection, wrapped, limits)
        elapsed_s = time.perf_counter() - began
    return SandboxResult(columns, types, rows, truncated, elapsed_s, result_bytes)


@contextmanager
def _spill_directory(data_dir: Path) -> Iterator[Path | None]:
    """A private directory for one query's spill files inside ``data_dir``, removed afterwards; None
    (spilling off) if it cannot be made, e.g. a read-only data directory."""
    try:
        root = data_dir / SPILL_DIRECTORY
        root.mkdir(exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="query-", dir=root))
    except OSError:
        yield None
        return
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _locked_down(recording: Path, limits: SandboxLimits, spill: Path | None) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:", config={
        "threads": limits.threads,
        "memory_limit": limits.memory_limit,
        # An empty temp_directory turns spilling off; never the default <cwd>/.tmp.
        "temp_directory": str(spill) if spill else "",
        "max_temp_directory_size": limits.max_temp_size,
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
    try:
        kind = statement.type.name
    except ValueError:
        # A statement type this DuckDB build has and its Python enum lacks (UPDATE EXTENSIONS is 29).
        kind = _leading_keywords(statement.query)
        if kind.startswith("UPDATE EXTENSIONS"):
            raise ExtensionRefused("UPDATE EXTENSIONS is not allowed: extensions can reach files and the network") from None
    if kind == "PRAGMA" and _leading_keywords(statement.query).startswith("COPY FROM DATABASE"):
        kind = "COPY_DATABASE"  # parsed as a pragma; refused for what it does
    if kind != "SELECT":
        refusal, reason = _STATEMENTS.get(kind, (WriteRefused, f"{kind} is not allowed: {_ONLY_SELECT}"))
        raise refusal(reason)
    return statement.query.strip().rstrip(";").rstrip()


def _leading_keywords(sql: str) -> str:
    """The keywords a statement starts with, upper-cased (``update extensions (x)`` -> ``UPDATE EXTENSIONS``)."""
    words = []
    for start, kind in duckdb.tokenize(sql):
        if kind != duckdb.token_type.keyword:
            break
        words.append(re.match(r"\w*", sql[start:]).group().upper())
    return " ".join(words) or "this statement"


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


def check_plan(connection: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse a query whose bound plan reads anything but the recording's tables and the allowed table
    functions: views and macros are expanded here, so a system view cannot hide what it reads."""
    try:
        plan = json.loads(connection.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchall()[0][1])
    except duckdb.Error as error:
        raise InvalidQuery(str(error)) from None
    stack = list(plan)
    while stack:
        operator = stack.pop()
        children = operator.get("children") or []
        stack.extend(children)
        info = operator.get("extra_info") or {}
        if "Function" in info:
            name = str(info["Function"]).lower()
            if name not in ALLOWED_TABLE_FUNCTIONS:
                raise _reads_outside(connection, query, f"{name}()", name)
        elif "Table" in info:
            table = str(info["Table"])
            if table.split(".", 1)[0] not in _RECORDING_CATALOGS:
                raise _reads_outside(connection, query, table, "")
        elif not children and operator.get("name") not in _PLAN_LEAVES_WITHOUT_TABLE:
            raise InvalidQuery(f"the sandbox cannot check a plan that reads through {operator.get('name')};"
                               " write it as a plain SELECT over the recording's tables and views")


def _reads_outside(connection: duckdb.DuckDBPyConnection, query: str, what: str, function: str) -> QueryForbidden:
    """The refusal for a plan reading ``what``, naming the system views or macros the query used for it."""
    named = sorted(_names_outside_recording(connection, query))
    via = f"{', '.join(named)} read{'s' if len(named) == 1 else ''} {what}" if named else f"the query reads {what}"
    if function in _SETTINGS_FUNCTIONS:
        return SettingsRefused(f"{via}, which reveals the server's files or settings and is not allowed;"
                               " query the recording's tables and views")
    return FunctionRefused(f"{via}, which is not available here: a query reads only the recording's tables and"
                           f" views and the table functions {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}")


def _names_outside_recording(connection: duckdb.DuckDBPyConnection, query: str) -> set[str]:
    """Tables and functions the query names that are not the recording's own relations."""
    relations = {row[0].lower() for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [ALIAS]).fetchall()}
    tree = json.loads(connection.execute("SELECT json_serialize_sql(?)", [query]).fetchone()[0])
    names = set()
    for node, _ in _nodes(tree, False):
        if node.get("type") == "BASE_TABLE" and str(node.get("table_name", "")).lower() not in relations:
            names.add(str(node["table_name"]))
        elif "function_name" in node and str(node["function_name"]).lower() in _SETTINGS_FUNCTIONS:
            names.add(f"{node['function_name']}()")
    return names


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
                         limits: SandboxLimits) -> tuple[list[str], list[str], list[tuple], bool, int]:
    """Columns, types, at most ``row_limit`` rows, whether there were more, and the rows' JSON size."""
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        connection.interrupt()

    timer = threading.Timer(limits.time_limit_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        result = execute(connection, query)
        rows, truncated, result_bytes = _capped_rows(result.columns, result.rows, limits)
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran longer than {limits.time_limit_s:g} s and was interrupted") from None
    except duckdb.OutOfMemoryException as error:
        if "max_temp_directory_size" in str(error):
            raise QueryTooLarge(f"the query needs more than the sandbox's {limits.memory_limit} of memory and"
                                f" {limits.max_temp_size} of spill space (max_temp_size); aggregate or filter more") from None
        raise QueryTooLarge(f"the query needs more than the sandbox's {limits.memory_limit} of memory (memory_limit);"
                            " aggregate or filter more") from None
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
    return result.columns, result.types, rows, truncated, result_bytes


def _capped_rows(columns: list[str], rows: Iterator[tuple], limits: SandboxLimits) -> tuple[list[tuple], bool, int]:
    """The first ``row_limit`` rows, whether there were more, and their size as the JSON objects the
    endpoint sends (compact, UTF-8); stops fetching as soon as ``max_result_bytes`` is passed."""
    kept: list[tuple] = []
    size = 2  # the brackets of the array
    for row in rows:
        if len(kept) == limits.row_limit:
            return kept, True, size
        objects = dict(zip(columns, (json_value(value) for value in row)))
        size += len(json.dumps(objects, ensure_ascii=False, separators=(",", ":")).encode()) + bool(kept)
        if size > limits.max_result_bytes:
            raise ResultTooLarge(f"the result is larger than the {limits.max_result_bytes:,}-byte cap on a result"
                                 f" (max_result_bytes, reached at row {len(kept) + 1}); select fewer rows or"
                                 " columns, or aggregate")
        kept.append(row)
    return kept, False, size
