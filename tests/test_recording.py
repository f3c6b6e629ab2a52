"""The recording file: its tables, its status, the Python API, and surviving a kill mid-run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import duckdb
import polars as pl
import pytest
from tests.helpers import make_recording

from battsim.engine.fleet import get_preset
from battsim.engine.readings import READING_COLUMNS
from battsim.engine.world import DEFAULT_START
from battsim.recordings import NotARecordingError, open_recording
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.schema import TABLES
from battsim.recordings.views import VIEW_NAMES


@pytest.fixture(scope="module")
def day_recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "day.duckdb"
    make_recording(path, preset="single-string", days=1, interval_s=60, seed=3)
    return path


def test_tables_and_views_of_the_contract(day_recording):
    with duckdb.connect(str(day_recording), read_only=True) as con:
        names = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"runs", "sites", "batteries", "readings", "events", "reading_samples"} <= names
        run = con.execute('SELECT seed, interval_s, status, start, "end", readings FROM runs').fetchone()
        assert run[0] == 3 and run[1] == 60 and run[2] == "complete"
        assert run[5] == 24 * 1440
        columns = [row[0] for row in con.execute("DESCRIBE readings").fetchall()]
        for field in ("battery_id", "timestamp", "voltage_v", "current_a", "temperature_c",
                      "internal_resistance_mohm", "soh_pct", "mode", "soc_pct", "site_id", "string_id", "ambient_c",
                      "true_soh_pct", "sensor_fault", "scenario_mask"):
            assert field in columns
        assert con.execute("SELECT DISTINCT mode FROM readings").fetchall() == [("float",)]
        kind = con.execute("SELECT data_type FROM information_schema.columns "
                           "WHERE table_name = 'reading_samples' AND column_name = 'timestamp'").fetchone()[0]
        assert kind == "TIMESTAMP WITH TIME ZONE"


def test_the_file_documents_itself_every_table_column_and_view_has_a_comment(day_recording):
    """Any DuckDB client reads what each column means from the file (schema.TABLES is the one declaration)."""
    with duckdb.connect(str(day_recording), read_only=True) as con:
        tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall())
        columns = con.execute("SELECT table_name, column_name, comment FROM duckdb_columns() "
                              "WHERE table_name IN (SELECT table_name FROM duckdb_tables())").fetchall()
        views = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    assert set(tables) == set(TABLES) and all(tables.values())
    assert {(table, column) for table, column, _ in columns} == {
        (name, column.name) for name, table in TABLES.items() for column in table.columns}
    undocumented = [(table, column) for table, column, comment in columns if not comment]
    assert not undocumented
    assert {"readings", *VIEW_NAMES} <= set(views) and all(views[name] for name in ("readings", *VIEW_NAMES))
    described = {column: comment for table, column, comment in columns if table == "reading_samples"}
    assert described["voltage_v"] == READING_COLUMNS["voltage_v"][1]


def test_values_are_physically_plausible_on_float(day_recording):
    with duckdb.connect(str(day_recording), read_only=True) as con:
        volts, amps, temp, soc = con.execute(
            "SELECT avg(voltage_v), avg(current_a), avg(temperature_c), min(soc_pct) FROM readings").fetchone()
        true_amps = con.execute("SELECT avg(true_current_a) FROM string_readings").fetchone()[0]
    assert 13.3 < volts < 13.8  # 2.22-2.30 V/cell on float
    # Issue 15: current_a is the string's one Hall sensor, whose zero offset (σ 0.1 % of its 150 A full scale)
    # is larger than a float current; the float current itself is checked on the truth.
    assert 0 <= true_amps < 0.2  # float current of a 120 Ah block: tens of mA
    assert abs(amps) < 0.6
    assert 20 < temp < 30
    assert soc > 99


def test_python_api_filters_lazily(day_recording):
    with open_recording(day_recording) as rec:
        assert rec.run.status == "complete"
        frame = rec.readings(start="2026-01-01T06:00+07:00", end="2026-01-01T07:00+07:00",
                             batteries=["BKK_DC1_SYS01_STR01_BAT002"])
        assert isinstance(frame, pl.LazyFrame)
        rows = frame.collect()
        assert rows.height == 60
        assert rows["battery_id"].unique().to_list() == ["BKK_DC1_SYS01_STR01_BAT002"]
        assert rows["timestamp"].is_sorted()


def test_opening_something_else_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_recording(tmp_path / "missing.duckdb")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(NotARecordingError, match="not a battsim recording"):
        open_recording(other)
    text = tmp_path / "text.duckdb"
    text.write_text("hello")
    with pytest.raises(NotARecordingError):
        open_recording(text)


def test_a_run_killed_mid_way_keeps_every_flushed_batch(tmp_path):
    path = tmp_path / "killed.duckdb"
    script = textwrap.dedent(f"""
        import sys
        from datetime import timedelta
        from pathlib import Path
        from battsim.engine.fleet import get_preset
        from battsim.engine.world import DEFAULT_START
        from battsim.recordings.batch import BatchRun, record_run

        def report(done_s, readings):
            if readings:
                print(readings, flush=True)

        run = BatchRun(fleet=get_preset("thailand-9x24"), out=Path({str(path)!r}), seed=1,
                       end=DEFAULT_START + timedelta(days=3650), batch_rows=20_000)
        record_run(run, progress=report)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # wait until several batches have been handed to the writer
            assert child.stdout.readline(), "the run ended before it was killed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with open_recording(path) as rec:
        assert rec.run.status == "incomplete"
        stored = rec.sql("SELECT count(*) AS n, count(DISTINCT timestamp) AS ticks FROM reading_samples").row(0)
        readings, ticks = stored
        assert readings > 0
        assert readings == ticks * 216  # whole ticks only: no half-written batch
        assert rec.run.readings <= readings  # the progress counter was committed with its batch


def test_batch_runs_record_alarms_unless_asked_not_to(tmp_path):
    def alarm_events(alarms: bool) -> int:
        path = tmp_path / f"alarms-{alarms}.duckdb"
        record_run(BatchRun(fleet=get_preset("thailand-9x24"), out=path, seed=1, end=DEFAULT_START + timedelta(hours=6),
                            alarms=alarms))
        with open_recording(path) as rec:
            kinds = rec.events()["kind"].to_list()
            readings = rec.run.readings
        assert readings == 216 * 360
        return sum(kind == "alarm_raised" for kind in kinds)

    assert alarm_events(alarms=True) > 0  # aged jars of the preset are over their resistance baseline
    assert alarm_events(alarms=False) == 0


def test_runs_config_is_one_typed_shape_for_batch_and_live_runs(day_recording):
    from pydantic import ValidationError

    from battsim.recordings.run_config import RunConfig

    with open_recording(day_recording) as recording:
        config = recording.config
        stored = json.loads(recording.sql("SELECT config FROM runs").item())
    assert config.mode == "batch" and config.seed == stored["seed"] and config.interval_s == 60
    assert config.start and config.end and config.speed is None
    assert set(stored) == {"fleet", "seed", "start", "end", "interval_s", "preset", "timelines", "alarms"}
    assert get_preset(config.preset).model_dump(mode="json") == config.fleet  # the run can be made again
    live = {key: value for key, value in stored.items() if key not in ("start", "end", "alarms")}
    assert RunConfig.read(json.dumps({**live, "mode": "live", "speed": 60.0, "backfill_s": 0.0})).speed == 60.0
    assert RunConfig.read(stored).as_json() == stored  # read and written back: the same keys and values
    with pytest.raises(ValidationError, match="not_a_field"):
        RunConfig.read({**stored, "not_a_field": 1})
