"""The recording file format: one DuckDB file per run. This module *is* the contract.

Tables
    runs             one row: id, seed, config (JSON), start, end, interval_s, status
                     (running | complete; a file whose writer died still says running, and
                     :func:`battsim.recordings.recording.open_recording` reports it as incomplete),
                     version, preset, readings, ticks, wall_seconds
    sites            site_key, site_id, name, timezone, longitude_deg, load_kw_per_string, room_setpoint_c
    batteries        battery_key, battery_id, site_id, string_id, position, model, profile,
                     capacity_ah, baseline_resistance_mohm, initial_soh_pct
    reading_samples  the stored readings, narrow: timestamp (TIMESTAMPTZ, UTC), battery_key, measured
                     values, then ground truth (true_*, sensor_fault, scenario_mask)
    events           timestamp, kind, site_id, string_id, battery_id, detail (JSON)
    scenario_catalogue  bit, scenario: which bit of scenario_mask is which scenario
Views
    readings         reading_samples joined to batteries: battery_id, site_id, string_id and mode by
                     name, measured NaN shown as NULL (sensor dropout)
    daily_battery_summary, soh_trend, time_above_temperature, outage_autonomy, alarms
                     the analysis views, defined in :mod:`battsim.recordings.views`
"""

from __future__ import annotations

from battsim.engine.battery import MODE_NAMES
from battsim.engine.readings import READING_COLUMNS
from battsim.recordings.views import view_statements

FORMAT_VERSION = 1

_SQL_TYPES = {
    "int64": "BIGINT", "uint16": "USMALLINT", "float32": "FLOAT", "uint8": "UTINYINT", "uint32": "UINTEGER",
}


def reading_sample_columns() -> list[tuple[str, str]]:
    columns = [("timestamp", "TIMESTAMPTZ")]
    for name, (dtype, _) in READING_COLUMNS.items():
        if name != "timestamp_us":
            columns.append((name, _SQL_TYPES[dtype.__name__]))
    return columns


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


def create_statements() -> list[str]:
    samples = ", ".join(f'"{name}" {sql_type}' for name, sql_type in reading_sample_columns())
    return [
        """CREATE TABLE runs (id VARCHAR PRIMARY KEY, seed BIGINT, config JSON, start TIMESTAMPTZ,
           "end" TIMESTAMPTZ, interval_s INTEGER, status VARCHAR, version VARCHAR, format_version INTEGER,
           preset VARCHAR, readings BIGINT, ticks BIGINT, wall_seconds DOUBLE, created_at TIMESTAMPTZ)""",
        """CREATE TABLE sites (site_key USMALLINT PRIMARY KEY, site_id VARCHAR UNIQUE, name VARCHAR,
           timezone VARCHAR, longitude_deg DOUBLE, load_kw_per_string DOUBLE, room_setpoint_c DOUBLE)""",
        """CREATE TABLE batteries (battery_key USMALLINT PRIMARY KEY, battery_id VARCHAR UNIQUE,
           site_id VARCHAR, string_id VARCHAR, position INTEGER, model VARCHAR, profile VARCHAR,
           capacity_ah DOUBLE, baseline_resistance_mohm DOUBLE, initial_soh_pct DOUBLE)""",
        f"CREATE TABLE reading_samples ({samples})",
        """CREATE TABLE events (timestamp TIMESTAMPTZ, kind VARCHAR, site_id VARCHAR, string_id VARCHAR,
           battery_id VARCHAR, detail JSON)""",
        "CREATE TABLE scenario_catalogue (bit UTINYINT, scenario VARCHAR)",
        _readings_view(),
        *view_statements(),  # the analysis views (recordings/views.py)
    ]
