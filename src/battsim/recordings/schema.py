"""The recording file format: one DuckDB file per run. This module *is* the contract.

Tables
    runs             one row: id, seed, config (JSON), start, end, interval_s, status
                     (running | complete; a file whose writer died still says running, and
                     :func:`battsim.recordings.recording.open_recording` reports it as incomplete),
                     version, preset, readings, ticks, wall_seconds
    sites            site_key, site_id, name, timezone, longitude_deg, load_kw_per_string, room_setpoint_c
    batteries        battery_key, battery_id, site_id, string_id, position, model, profile,
                     capacity_ah, baseline_resistance_mohm, initial_soh_pct, rack_offset_c (the air beside the
                     jar minus the room's, by its place in the rack, K), installed_at (NULL: there at the
                     start), replaces (the battery_id it replaced), replaced_at and replaced_by (when and by
                     which jar it was replaced after a failed capacity test; NULL while in service)
    strings          string_key, string_id, site_id, jars, rated_capacity_ah (C10, mean of its jars),
                     current_full_scale_a (its Hall sensor's range)
    reading_samples  the stored readings, narrow: timestamp (TIMESTAMPTZ, UTC), battery_key, measured
                     values, then ground truth (true_*, sensor_fault, scenario_mask); every column is
                     described in :data:`battsim.engine.readings.READING_COLUMNS` (and ``battsim query
                     --describe``). A measured value is NULL where the monitor had none (a sensor dropout,
                     a communication gap, no ohmic test yet).
    string_readings  one row per string per tick: timestamp, string_key, voltage_v, current_a,
                     ripple_current_rms_a, ripple_voltage_rms_v, mode, then true_voltage_v, true_current_a,
                     true_ripple_current_rms_a, true_room_c (:data:`battsim.engine.readings.STRING_COLUMNS`)
    ohmic_tests      one row per jar per test: timestamp, battery_key, resistance_mohm, temperature_c,
                     test_current_a, true_resistance_mohm, instrument (0 the monitor's scheduled test, 1 a
                     handheld meter in an impedance survey) (:data:`battsim.engine.readings.OHMIC_TEST_COLUMNS`)
    events           timestamp, kind, site_id, string_id, battery_id, detail (JSON)
    scenario_catalogue  bit, scenario: which bit of scenario_mask is which scenario
Views
    readings         reading_samples joined to batteries: battery_id, site_id, string_id and mode by
                     name, measured NaN shown as NULL (sensor dropout, communication gap)
    daily_battery_summary, soh_trend, time_above_temperature, outage_autonomy, alarms,
    jar_string_readings, capacity_tests, rul
                     the analysis views, defined in :mod:`battsim.recordings.views`

Format versions: 1 the first; 2 (issue 15) added strings, string_readings, ohmic_tests, the batteries
columns from rack_offset_c on, and reading_samples' true_internal_resistance_mohm and true_soc_pct
(internal_resistance_mohm became the last test's value, soc_pct the monitor's estimate, ambient_c the
room probe's reading, current_a the string's Hall sensor; the true air beside a jar is
string_readings.true_room_c + batteries.rack_offset_c, shown as true_ambient_c in jar_string_readings).
"""

from __future__ import annotations

from battsim.engine.battery import MODE_NAMES
from battsim.engine.readings import OHMIC_TEST_COLUMNS, READING_COLUMNS, STRING_COLUMNS
from battsim.recordings.views import view_statements

FORMAT_VERSION = 2

_SQL_TYPES = {
    "int64": "BIGINT", "uint16": "USMALLINT", "float32": "FLOAT", "uint8": "UTINYINT", "uint32": "UINTEGER",
}


def _sql_columns(spec: dict[str, tuple[type, str]]) -> list[tuple[str, str]]:
    columns = [("timestamp", "TIMESTAMPTZ")]
    for name, (dtype, _) in spec.items():
        if name != "timestamp_us":
            columns.append((name, _SQL_TYPES[dtype.__name__]))
    return columns


def reading_sample_columns() -> list[tuple[str, str]]:
    return _sql_columns(READING_COLUMNS)


def string_reading_columns() -> list[tuple[str, str]]:
    return _sql_columns(STRING_COLUMNS)


def ohmic_test_columns() -> list[tuple[str, str]]:
    return _sql_columns(OHMIC_TEST_COLUMNS)


_MEASURED = ("voltage_v", "current_a", "temperature_c", "internal_resistance_mohm")
_MODE_LIST = "[" + ", ".join(f"'{name}'" for name in MODE_NAMES) + "]"


def _readings_view() -> str:
    selected = []
    for name, _ in reading_sample_columns():
        if name in ("timestamp", "battery_key"):
            continue
        if name in _MEASURED:
            selected.append(f"CASE WHEN isnan(r.{name}) THEN NULL ELSE r.{name} END AS {name}")
        elif name == "mode":
            selected.append(f"{_MODE_LIST}[r.mode + 1] AS mode")
        else:
            selected.append(f"r.{name}")
    return (
        "CREATE OR REPLACE VIEW readings AS SELECT r.timestamp, b.battery_id, b.site_id, b.string_id, "
        + ", ".join(selected)
        + " FROM reading_samples r JOIN batteries b USING (battery_key)"
    )


def _table(name: str, columns: list[tuple[str, str]]) -> str:
    return f"CREATE TABLE {name} (" + ", ".join(f'"{column}" {sql_type}' for column, sql_type in columns) + ")"


def create_statements() -> list[str]:
    return [
        """CREATE TABLE runs (id VARCHAR PRIMARY KEY, seed BIGINT, config JSON, start TIMESTAMPTZ,
           "end" TIMESTAMPTZ, interval_s INTEGER, status VARCHAR, version VARCHAR, format_version INTEGER,
           preset VARCHAR, readings BIGINT, ticks BIGINT, wall_seconds DOUBLE, created_at TIMESTAMPTZ)""",
        """CREATE TABLE sites (site_key USMALLINT PRIMARY KEY, site_id VARCHAR UNIQUE, name VARCHAR,
           timezone VARCHAR, longitude_deg DOUBLE, load_kw_per_string DOUBLE, room_setpoint_c DOUBLE)""",
        """CREATE TABLE batteries (battery_key USMALLINT PRIMARY KEY, battery_id VARCHAR UNIQUE,
           site_id VARCHAR, string_id VARCHAR, position INTEGER, model VARCHAR, profile VARCHAR,
           capacity_ah DOUBLE, baseline_resistance_mohm DOUBLE, initial_soh_pct DOUBLE, rack_offset_c DOUBLE,
           installed_at TIMESTAMPTZ,
           replaces VARCHAR, replaced_at TIMESTAMPTZ, replaced_by VARCHAR)""",
        """CREATE TABLE strings (string_key USMALLINT PRIMARY KEY, string_id VARCHAR UNIQUE, site_id VARCHAR,
           jars INTEGER, rated_capacity_ah DOUBLE, current_full_scale_a DOUBLE)""",
        _table("reading_samples", reading_sample_columns()),
        _table("string_readings", string_reading_columns()),
        _table("ohmic_tests", ohmic_test_columns()),
        """CREATE TABLE events (timestamp TIMESTAMPTZ, kind VARCHAR, site_id VARCHAR, string_id VARCHAR,
           battery_id VARCHAR, detail JSON)""",
        "CREATE TABLE scenario_catalogue (bit UTINYINT, scenario VARCHAR)",
        _readings_view(),
        *view_statements(),  # the analysis views (recordings/views.py)
    ]
