"""Untrusted SQL: `POST /api/v1/query` and the sandbox behind it refuse every attack with a specific
reason, answer ordinary queries, and leave the recording exactly as it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.test_analysis import make_story_recording

from battsim.recordings import sandbox
from battsim.recordings.sandbox import SandboxLimits, run_sandboxed
from battsim.service.routes_query import Queries, find_recording, router

LIMITS = SandboxLimits(row_limit=50, time_limit_s=2.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("data")
    make_story_recording(directory / "story.duckdb")
    return directory


@pytest.fixture(scope="module")
def recording(data_dir) -> Path:
    return data_dir / "story.duckdb"


@pytest.fixture(scope="module")
def client(data_dir) -> TestClient:
    web = FastAPI()
    web.state.queries = Queries(data_dir, LIMITS)
    web.include_router(router)
    return TestClient(web)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# (sql, exception, words the reason must contain). {tmp} is a writable scratch directory.
ATTACKS = [
    ("SELECT * FROM read_csv('/etc/passwd')", sandbox.FileAccessRefused, "read_csv"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", sandbox.FileAccessRefused, "read_csv_auto"),
    ("SELECT * FROM read_parquet('{tmp}/x.parquet')", sandbox.FileAccessRefused, "read_parquet"),
    ("SELECT * FROM read_json_auto('/etc/hosts')", sandbox.FileAccessRefused, "read_json_auto"),
    ("SELECT * FROM read_text('/etc/hostname')", sandbox.FileAccessRefused, "read_text"),
    ("SELECT * FROM read_blob('/etc/hostname')", sandbox.FileAccessRefused, "read_blob"),
    ("SELECT * FROM glob('/*')", sandbox.FileAccessRefused, "glob"),
    ("SELECT * FROM parquet_metadata('{tmp}/x.parquet')", sandbox.FileAccessRefused, "parquet_metadata"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", sandbox.FileAccessRefused, "sniff_csv"),
    ("SELECT * FROM '/etc/passwd'", sandbox.FileAccessRefused, "/etc/passwd"),
    ("FROM 'https://example.com/data.parquet'", sandbox.FileAccessRefused, "URL"),
    ("SELECT * FROM 's3://bucket/key.csv'", sandbox.FileAccessRefused, "s3://"),
    ("WITH t AS (SELECT * FROM read_parquet('x.parquet')) SELECT 1", sandbox.FileAccessRefused, "read_parquet"),
    ("SELECT 1 WHERE 1 IN (SELECT 1 FROM glob('/root/*'))", sandbox.FileAccessRefused, "glob"),
    ("COPY runs TO '{tmp}/stolen.csv'", sandbox.FileAccessRefused, "COPY"),
    ("COPY (SELECT * FROM readings) TO '{tmp}/stolen.parquet' (FORMAT parquet)", sandbox.FileAccessRefused, "COPY"),
    ("COPY events FROM '{tmp}/events.csv'", sandbox.FileAccessRefused, "COPY"),
    ("EXPORT DATABASE '{tmp}/dump'", sandbox.FileAccessRefused, "EXPORT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", sandbox.DatabaseAccessRefused, "ATTACH"),
    ("ATTACH ':memory:' AS scratch", sandbox.DatabaseAccessRefused, "ATTACH"),
    ("DETACH recording", sandbox.DatabaseAccessRefused, "DETACH"),
    ("USE memory", sandbox.SettingsRefused, "USE"),
    ("INSTALL httpfs", sandbox.ExtensionRefused, "INSTALL"),
    ("LOAD httpfs", sandbox.ExtensionRefused, "LOAD"),
    ("FORCE INSTALL spatial FROM community", sandbox.ExtensionRefused, "INSTALL"),
    ("SET enable_external_access = true", sandbox.SettingsRefused, "SET"),
    ("SET lock_configuration = false", sandbox.SettingsRefused, "SET"),
    ("RESET threads", sandbox.SettingsRefused, "SET"),
    ("SET VARIABLE x = 1", sandbox.SettingsRefused, "SET"),
    ("PRAGMA enable_profiling", sandbox.SettingsRefused, "PRAGMA"),
    ("PRAGMA version", sandbox.SettingsRefused, "PRAGMA"),
    ("CALL pragma_version()", sandbox.SettingsRefused, "CALL"),
    ("CHECKPOINT", sandbox.SettingsRefused, "CALL"),
    ("SELECT * FROM pragma_database_size()", sandbox.SettingsRefused, "pragma_database_size"),
    ("SELECT current_setting('home_directory')", sandbox.SettingsRefused, "current_setting"),
    ("SELECT list_transform([1], x -> current_setting('TimeZone'))", sandbox.SettingsRefused, "current_setting"),
    ("SELECT getenv('HOME')", sandbox.SettingsRefused, "getenv"),
    ("SELECT * FROM duckdb_settings()", sandbox.SettingsRefused, "duckdb_settings"),
    ("SELECT * FROM system.main.duckdb_settings()", sandbox.SettingsRefused, "duckdb_settings"),
    ("SELECT path FROM duckdb_databases()", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT * FROM duckdb_extensions()", sandbox.SettingsRefused, "duckdb_extensions"),
    ("SELECT * FROM duckdb_secrets()", sandbox.SettingsRefused, "duckdb_secrets"),
    ("SELECT * FROM query('SELECT 1')", sandbox.FunctionRefused, "query"),
    ("SELECT * FROM query_table('runs')", sandbox.FunctionRefused, "query_table"),
    ("SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))", sandbox.FunctionRefused,
     "json_execute_serialized_sql"),
    ("SELECT sleep_ms(60000)", sandbox.FunctionRefused, "sleep_ms"),
    ("SELECT * FROM test_all_types()", sandbox.FunctionRefused, "not available"),
    ("INSERT INTO events SELECT * FROM events", sandbox.WriteRefused, "read-only"),
    ("UPDATE runs SET status = 'complete'", sandbox.WriteRefused, "read-only"),
    ("DELETE FROM reading_samples", sandbox.WriteRefused, "read-only"),
    ("DROP TABLE runs", sandbox.WriteRefused, "read-only"),
    ("DROP VIEW readings", sandbox.WriteRefused, "read-only"),
    ("ALTER TABLE runs ADD COLUMN x INTEGER", sandbox.WriteRefused, "read-only"),
    ("CREATE TABLE x AS SELECT 1", sandbox.WriteRefused, "read-only"),
    ("CREATE TEMP TABLE t (x INTEGER)", sandbox.WriteRefused, "read-only"),
    ("CREATE MACRO evil(x) AS x", sandbox.WriteRefused, "read-only"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", sandbox.WriteRefused, "read-only"),
    ("BEGIN TRANSACTION", sandbox.WriteRefused, "read-only"),
    ("VACUUM", sandbox.WriteRefused, "read-only"),
    ("SELECT 1; DROP TABLE runs", sandbox.MultipleStatements, "2 statements"),
    ("SELECT 1; SELECT 2", sandbox.MultipleStatements, "2 statements"),
    ("EXPLAIN ANALYZE SELECT 1", sandbox.InvalidQuery, "EXPLAIN"),
    ("PIVOT runs ON status USING count(*)", sandbox.InvalidQuery, "PIVOT"),
    ("", sandbox.InvalidQuery, "empty"),
    (" ;; ", sandbox.InvalidQuery, "no statement"),
    ("SELEC 1", sandbox.InvalidQuery, "syntax error"),
    ("SELECT * FROM no_such_table", sandbox.InvalidQuery, "no_such_table"),
    ("SELECT 1 /*", sandbox.InvalidQuery, ""),
    ("SELECT 1 AS x " + "-- pad\n" * 3000, sandbox.InvalidQuery, "characters"),
    ("SELECT " + "(" * 450 + "1" + " + 1)" * 450, sandbox.InvalidQuery, "nested too deeply"),
    # Issue 11: catalog views and macros that reveal paths or settings (a table name in the syntax
    # tree, a revealing table function in the plan), and statements the Python enum does not know.
    ("SELECT path FROM duckdb_databases", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT * FROM duckdb_databases", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT * FROM system.main.duckdb_databases", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT * FROM pragma_database_list", sandbox.SettingsRefused, "pragma_database_list"),
    ("SELECT * FROM pragma_database_list()", sandbox.SettingsRefused, "pragma_database_list"),
    ("SELECT count(*) FROM pg_settings", sandbox.SettingsRefused, "pg_settings"),
    ("SELECT name, setting FROM pg_catalog.pg_settings WHERE name LIKE '%directory%'", sandbox.SettingsRefused,
     "pg_settings"),
    ("SELECT * FROM pg_catalog.pg_database", sandbox.SettingsRefused, "duckdb_databases"),
    ("SHOW DATABASES", sandbox.SettingsRefused, "duckdb_databases"),
    ("FROM duckdb_settings()", sandbox.SettingsRefused, "duckdb_settings"),
    ("SUMMARIZE SELECT * FROM pg_settings", sandbox.SettingsRefused, "pg_settings"),
    ("SELECT * FROM duckdb_logs", sandbox.SettingsRefused, "duckdb_logs"),
    ("SELECT * FROM duckdb_log_contexts()", sandbox.SettingsRefused, "duckdb_log_contexts"),
    ("SELECT * FROM duckdb_temporary_files()", sandbox.SettingsRefused, "duckdb_temporary_files"),
    ("SELECT * FROM duckdb_memory()", sandbox.SettingsRefused, "duckdb_memory"),
    ("SELECT * FROM duckdb_extension_repositories()", sandbox.SettingsRefused, "duckdb_extension_repositories"),
    ("SELECT * FROM duckdb_external_file_cache()", sandbox.SettingsRefused, "duckdb_external_file_cache"),
    ("SELECT * FROM duckdb_variables()", sandbox.SettingsRefused, "duckdb_variables"),
    ("SELECT * FROM duckdb_prepared_statements()", sandbox.SettingsRefused, "duckdb_prepared_statements"),
    ("SELECT * FROM duckdb_profiling_settings()", sandbox.SettingsRefused, "duckdb_profiling_settings"),
    ("SELECT * FROM pragma_platform()", sandbox.SettingsRefused, "pragma_platform"),
    ("SELECT * FROM pragma_user_agent()", sandbox.SettingsRefused, "pragma_user_agent"),
    ("SELECT * FROM pragma_version()", sandbox.SettingsRefused, "pragma_version"),
    ("SELECT * FROM pragma_storage_info('runs')", sandbox.SettingsRefused, "pragma_storage_info"),
    ("SELECT * FROM pragma_metadata_info()", sandbox.SettingsRefused, "pragma_metadata_info"),
    ("SELECT * FROM which_secret('s3://bucket/key', 's3')", sandbox.SettingsRefused, "which_secret"),
    ("SELECT get_block_size('recording')", sandbox.SettingsRefused, "get_block_size"),
    ("SELECT current_setting('temp_directory')", sandbox.SettingsRefused, "current_setting"),
    ("SELECT write_log('x')", sandbox.SettingsRefused, "write_log"),
    ("WITH d AS (SELECT * FROM duckdb_databases) SELECT path FROM d", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT (SELECT max(path) FROM duckdb_databases) AS p", sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT count(*) FROM readings WHERE battery_id IN (SELECT path FROM duckdb_databases)", sandbox.SettingsRefused,
     "duckdb_databases"),
    # A CTE of the same name in an inner scope does not hide the system view in the outer one.
    ("SELECT * FROM (WITH duckdb_databases AS (SELECT 1 AS path) SELECT path FROM duckdb_databases) a, duckdb_databases",
     sandbox.SettingsRefused, "duckdb_databases"),
    ("SELECT * FROM duckdb_connection_count()", sandbox.SettingsRefused, "duckdb_connection_count"),
    ("SELECT * FROM duckdb_dependencies()", sandbox.FunctionRefused, "not available"),
    ("SELECT * FROM duckdb_optimizers()", sandbox.FunctionRefused, "not available"),
    ("UPDATE EXTENSIONS", sandbox.ExtensionRefused, "UPDATE EXTENSIONS"),
    ("UPDATE EXTENSIONS (httpfs)", sandbox.ExtensionRefused, "UPDATE EXTENSIONS"),
    ("COPY FROM DATABASE recording TO memory", sandbox.DatabaseAccessRefused, "COPY FROM DATABASE"),
    ("PRAGMA database_list", sandbox.SettingsRefused, "PRAGMA"),
    ("PRAGMA show_databases", sandbox.SettingsRefused, "PRAGMA"),
    ("CALL duckdb_settings()", sandbox.SettingsRefused, "CALL"),
    ("SET temp_directory = '{tmp}'", sandbox.SettingsRefused, "SET"),
    ("SET max_temp_directory_size = '1TB'", sandbox.SettingsRefused, "SET"),
    ("SET memory_limit = '100GB'", sandbox.SettingsRefused, "SET"),
    ("SET GLOBAL enable_external_access = true", sandbox.SettingsRefused, "SET"),
    ("SET allowed_directories = ['/']", sandbox.SettingsRefused, "SET"),
    ("LOAD '{tmp}/evil.duckdb_extension'", sandbox.ExtensionRefused, "LOAD"),
    ("SELECT * FROM read_csv(['/etc/passwd', '/etc/group'])", sandbox.FileAccessRefused, "read_csv"),
    ("SELECT * FROM read_ndjson_objects('/etc/hosts')", sandbox.FileAccessRefused, "read_ndjson_objects"),
    ("SELECT * FROM parquet_schema('{tmp}/x.parquet')", sandbox.FileAccessRefused, "parquet_schema"),
    ("SELECT * FROM 'data.csv'", sandbox.FileAccessRefused, "data.csv"),
    ("PREPARE p AS SELECT 1", sandbox.WriteRefused, "PREPARE"),
    ("EXECUTE p", sandbox.WriteRefused, "EXECUTE"),
    ("MERGE INTO runs USING runs r ON true WHEN MATCHED THEN DELETE", sandbox.WriteRefused, "read-only"),
]


@pytest.mark.parametrize("sql, refusal, words", ATTACKS, ids=[a[0][:40] for a in ATTACKS])
def test_the_sandbox_refuses(recording, tmp_path, sql, refusal, words):
    with pytest.raises(refusal) as caught:
        run_sandboxed(recording, sql.format(tmp=tmp_path), LIMITS)
    assert words in caught.value.reason
    assert caught.value.status == (403 if issubclass(refusal, sandbox.QueryForbidden) else 400)


@pytest.mark.parametrize("sql, refusal, words", ATTACKS, ids=[a[0][:40] for a in ATTACKS])
def test_the_endpoint_refuses(client, tmp_path, sql, refusal, words):
    response = client.post("/api/v1/query", json={"recording": "story", "sql": sql.format(tmp=tmp_path)})
    assert response.status_code == refusal.status
    assert words in response.json()["detail"]


def test_a_runaway_query_is_interrupted(client):
    response = client.post("/api/v1/query", json={
        "recording": "story", "sql": "SELECT count(*) FROM range(1000000000000) a, readings b"})
    assert response.status_code == 400
    assert "interrupted" in response.json()["detail"]


def test_the_recording_is_unchanged_and_nothing_is_written(recording, tmp_path):
    before = digest(recording)
    for sql, refusal, _ in ATTACKS:
        with pytest.raises(refusal):
            run_sandboxed(recording, sql.format(tmp=tmp_path), LIMITS)
    assert digest(recording) == before
    assert list(tmp_path.iterdir()) == []
    assert not Path(str(recording) + ".wal").exists()


def test_ordinary_queries_are_answered(client):
    cases = {
        "SELECT count(*) AS n FROM readings": [{"n": 34560}],
        "SELECT rule, active FROM alarms ORDER BY raised_at": [{"rule": "high_temperature", "active": False},
                                                              {"rule": "low_soh", "active": True}],
        "WITH o AS (SELECT * FROM outage_autonomy) SELECT count(*) AS n, bool_or(lvd_reached) AS lvd FROM o":
            [{"n": 2, "lvd": True}],
        "SELECT min(day) AS day FROM daily_battery_summary": [{"day": "2026-01-01"}],
        "SELECT start FROM runs": [{"start": "2025-12-31T17:00:00+00:00"}],
        "SELECT * FROM (VALUES (1, 'a')) t(x, y)": [{"x": 1, "y": "a"}],
        "SELECT count(*) AS n FROM range(10) JOIN unnest([1, 2]) ON true": [{"n": 20}],
        "SELECT 'nan'::DOUBLE AS x": [{"x": None}],
    }
    for sql, rows in cases.items():
        response = client.post("/api/v1/query", json={"recording": "story", "sql": sql})
        assert response.status_code == 200, (sql, response.text)
        assert response.json()["rows"] == rows, sql
    described = client.post("/api/v1/query", json={"recording": "story", "sql": "DESCRIBE readings"}).json()
    assert "battery_id" in [row["column_name"] for row in described["rows"]]
    tables = client.post("/api/v1/query", json={"recording": "story", "sql": "SHOW TABLES"}).json()
    assert {"readings", "events", "outage_autonomy", "alarms"} <= {row["name"] for row in tables["rows"]}
    summary = client.post("/api/v1/query", json={"recording": "story", "sql": "SUMMARIZE runs;"})
    assert summary.status_code == 200


def test_the_row_limit_truncates_and_says_so(client):
    body = client.post("/api/v1/query", json={"recording": "story",
                                               "sql": "SELECT * FROM readings ORDER BY timestamp DESC"}).json()
    assert body["row_count"] == LIMITS.row_limit and body["truncated"] is True
    assert body["rows"][0]["timestamp"] == "2026-01-01T16:59:00+00:00"  # the user's ORDER BY is kept
    body = client.post("/api/v1/query", json={"recording": "story", "sql": "SELECT 1 AS x"}).json()
    assert body["truncated"] is False and body["columns"] == ["x"] and body["types"] == ["INTEGER"]


def test_recordings_by_name_or_run_id(client, recording, data_dir):
    run_id = duckdb.connect(str(recording), read_only=True).execute("SELECT id FROM runs").fetchone()[0]
    assert find_recording(data_dir, run_id) == recording
    assert find_recording(data_dir, "story.duckdb") == recording
    for name in ("story", "story.duckdb", run_id):
        assert client.post("/api/v1/query", json={"recording": name, "sql": "SELECT 1"}).status_code == 200
    missing = client.post("/api/v1/query", json={"recording": "nope", "sql": "SELECT 1"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    for bad in ("../story", "/etc/passwd", "a/b", ""):
        response = client.post("/api/v1/query", json={"recording": bad, "sql": "SELECT 1"})
        assert response.status_code == 400, bad
    assert client.post("/api/v1/query", json={"sql": "SELECT 1"}).status_code == 422
    assert client.post("/api/v1/query", json={"recording": "story", "sql": "SELECT 1", "x": 1}).status_code == 422


def test_a_recording_being_written_is_a_409(client, recording, data_dir):
    live = data_dir / "live.duckdb"
    shutil.copy(recording, live)
    writer = duckdb.connect(str(live))  # as the live service holds its recording
    try:
        response = client.post("/api/v1/query", json={"recording": "live", "sql": "SELECT 1"})
        assert response.status_code == 409 and "being written" in response.json()["detail"]
    finally:
        writer.close()
    assert client.post("/api/v1/query", json={"recording": "live", "sql": "SELECT 1"}).status_code == 200


def test_not_a_recording_is_a_404_without_the_path(client, data_dir):
    duckdb.connect(str(data_dir / "plain.duckdb")).close()
    response = client.post("/api/v1/query", json={"recording": "plain", "sql": "SELECT 1"})
    assert response.status_code == 404
    assert str(data_dir) not in response.json()["detail"]


def test_locking_down_the_sandbox_leaves_other_connections_alone(recording, tmp_path):
    run_sandboxed(recording, "SELECT 1", LIMITS)
    with duckdb.connect() as other:
        other.execute(f"COPY (SELECT 1 AS x) TO '{tmp_path / 'ok.csv'}'")
    assert (tmp_path / "ok.csv").exists()
