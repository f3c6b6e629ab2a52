"""The recording file format: one DuckDB file per run. This module *is* the contract: :data:`TABLES` declares
every table and column with its meaning, and generates the CREATE statements and a ``COMMENT ON`` for each table
and column, so the file documents itself to any DuckDB client (``SELECT table_name, column_name, comment FROM
duckdb_columns()``). Every reader checks ``runs.format_version`` first (:mod:`battsim.recordings.format`).

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
                     --describe``). A value is NULL where the monitor had none (a sensor dropout, a
                     communication gap, no ohmic test or SOH trend yet), in every table: no column of a
                     recording holds NaN.
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
                     name
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

from typing import NamedTuple

from battsim.engine.battery import MODE_NAMES
from battsim.engine.readings import OHMIC_TEST_COLUMNS, READING_COLUMNS, STRING_COLUMNS
from battsim.recordings.views import VIEW_DESCRIPTIONS, view_statements

FORMAT_VERSION = 2


# Jars and sites are keyed by USMALLINT (battery_key, site_key): at most 65,535 in one recording, less room
# for the jars that replace failed ones during a run. A bigger fleet is recorded as a shard set of parts.
MAX_RECORDING_JARS = 60_000


class Column(NamedTuple):
    name: str
    sql_type: str  # with its constraint, e.g. "VARCHAR UNIQUE"
    description: str


class Table(NamedTuple):
    description: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


_SQL_TYPES = {
    "int64": "BIGINT", "uint16": "USMALLINT", "float32": "FLOAT", "uint8": "UTINYINT", "uint32": "UINTEGER",
}
_TICK_TIME = "Tick time (TIMESTAMPTZ, stored in UTC)"


def _from_reading_spec(spec: dict[str, tuple[type, str]]) -> tuple[Column, ...]:
    """A narrow table's columns from the engine's column spec: microseconds become a TIMESTAMPTZ ``timestamp``."""
    columns = [Column("timestamp", "TIMESTAMPTZ", _TICK_TIME)]
    for name, (dtype, description) in spec.items():
        if name != "timestamp_us":
            columns.append(Column(name, _SQL_TYPES[dtype.__name__], description))
    return tuple(columns)


TABLES: dict[str, Table] = {
    "runs": Table("One row: the run this file records", (
        Column("id", "VARCHAR PRIMARY KEY", "Run id, 12 hex digits, new for every recording"),
        Column("seed", "BIGINT", "Random seed: the same seed and config give the same readings"),
        Column("config", "JSON", "What the run was asked for, as JSON: mode (batch or live), fleet, seed, interval_s, "
                              "timelines, ... (battsim.recordings.run_config.RunConfig)"),
        Column("start", "TIMESTAMPTZ", "Virtual start of the run"),
        Column("end", "TIMESTAMPTZ", "Virtual end asked for (NULL for a live run, which ends when stopped)"),
        Column("interval_s", "INTEGER", "Seconds between ticks"),
        Column("status", "VARCHAR", "running while written, complete when closed cleanly, incomplete when "
                                    "interrupted; a file whose writer died still says running (read as incomplete)"),
        Column("version", "VARCHAR", "battsim version that wrote the file"),
        Column("format_version", "INTEGER", "Version of this format (FORMAT_VERSION); readers check it first"),
        Column("preset", "VARCHAR", "Fleet preset name, NULL for a fleet file"),
        Column("readings", "BIGINT", "Rows written to reading_samples"),
        Column("ticks", "BIGINT", "Ticks written"),
        Column("wall_seconds", "DOUBLE", "Wall-clock seconds the run took"),
        Column("created_at", "TIMESTAMPTZ", "Wall-clock time the file was created"),
    )),
    "sites": Table("The fleet's sites", (
        Column("site_key", "USMALLINT PRIMARY KEY", "Index of the site"),
        Column("site_id", "VARCHAR UNIQUE", "Site id, e.g. BKK_DC1"),
        Column("name", "VARCHAR", "Human-readable site name"),
        Column("timezone", "VARCHAR", "IANA time zone of the site: local days and local times are in it"),
        Column("longitude_deg", "DOUBLE", "Longitude, degrees east (shifts the outdoor daily cycle)"),
        Column("load_kw_per_string", "DOUBLE", "Load each string carries on battery, kW"),
        Column("room_setpoint_c", "DOUBLE", "Battery-room HVAC set point, °C"),
    )),
    "batteries": Table("Every jar that was in service, including replacements (one row per jar, not per slot)", (
        Column("battery_key", "USMALLINT PRIMARY KEY", "Index of the jar: reading_samples.battery_key"),
        Column("battery_id", "VARCHAR UNIQUE", "Jar id, e.g. BKK_DC1_SYS01_STR01_BAT003"),
        Column("site_id", "VARCHAR", "Site of the jar"),
        Column("string_id", "VARCHAR", "Series string of the jar"),
        Column("position", "INTEGER", "Place in the string, 1 at the positive end"),
        Column("model", "VARCHAR", "Battery model (block type)"),
        Column("profile", "VARCHAR", "Ageing profile: healthy, accelerated or failing"),
        Column("capacity_ah", "DOUBLE", "Capacity of this jar when new, Ah (C10, with its manufacturing spread)"),
        Column("baseline_resistance_mohm", "DOUBLE", "Ohmic resistance of this jar when new, mΩ"),
        Column("initial_soh_pct", "DOUBLE", "State of health at the start, %"),
        Column("rack_offset_c", "DOUBLE", "The air beside the jar minus the room's, by its place in the rack, K"),
        Column("installed_at", "TIMESTAMPTZ", "When a replacement jar went in; NULL: there at the start"),
        Column("replaces", "VARCHAR", "The battery_id this jar replaced"),
        Column("replaced_at", "TIMESTAMPTZ", "When this jar was replaced after a failed capacity test; NULL while "
                                             "in service"),
        Column("replaced_by", "VARCHAR", "The battery_id that replaced it"),
    )),
    "strings": Table("The series strings", (
        Column("string_key", "USMALLINT PRIMARY KEY", "Index of the string: string_readings.string_key"),
        Column("string_id", "VARCHAR UNIQUE", "String id"),
        Column("site_id", "VARCHAR", "Site of the string"),
        Column("jars", "INTEGER", "Jars in series"),
        Column("rated_capacity_ah", "DOUBLE", "Rated capacity (C10, mean of its jars), Ah"),
        Column("current_full_scale_a", "DOUBLE", "Range of the string's Hall current sensor, A"),
    )),
    "reading_samples": Table("The readings, one row per jar per tick, narrow: measured values (NULL where the "
                             "monitor had none), then ground truth; the readings view names the jars",
                             _from_reading_spec(READING_COLUMNS)),
    "string_readings": Table("What the monitor measured per string per tick", _from_reading_spec(STRING_COLUMNS)),
    "ohmic_tests": Table("One row per jar per ohmic test", _from_reading_spec(OHMIC_TEST_COLUMNS)),
    "events": Table("What happened: scenarios, outages, alarms, failures, tests, replacements", (
        Column("timestamp", "TIMESTAMPTZ", "Virtual time of the event"),
        Column("kind", "VARCHAR", "Event kind, e.g. scenario_applied, grid_outage_start, alarm_raised"),
        Column("site_id", "VARCHAR", "Site it concerns, or NULL"),
        Column("string_id", "VARCHAR", "String it concerns, or NULL"),
        Column("battery_id", "VARCHAR", "Jar it concerns, or NULL"),
        Column("detail", "JSON", "Kind-specific detail as JSON"),
    )),
    "scenario_catalogue": Table("Which bit of reading_samples.scenario_mask is which scenario", (
        Column("bit", "UTINYINT", "Bit number in scenario_mask"),
        Column("scenario", "VARCHAR", "Scenario name"),
    )),
}


def reading_sample_columns() -> list[tuple[str, str]]:
    return [(column.name, column.sql_type) for column in TABLES["reading_samples"].columns]


def string_reading_columns() -> list[tuple[str, str]]:
    return [(column.name, column.sql_type) for column in TABLES["string_readings"].columns]


def ohmic_test_columns() -> list[tuple[str, str]]:
    return [(column.name, column.sql_type) for column in TABLES["ohmic_tests"].columns]


_MODE_LIST = "[" + ", ".join(f"'{name}'" for name in MODE_NAMES) + "]"
READINGS_VIEW_DESCRIPTION = ("reading_samples with battery_id, site_id, string_id and the mode by name: the table "
                             "to query readings from")


def _readings_view() -> str:
    selected = []
    for name, _ in reading_sample_columns():
        if name in ("timestamp", "battery_key"):
            continue
        if name == "mode":
            selected.append(f"{_MODE_LIST}[r.mode + 1] AS mode")
        else:
            selected.append(f"r.{name}")
    return (
        "CREATE OR REPLACE VIEW readings AS SELECT r.timestamp, b.battery_id, b.site_id, b.string_id, "
        + ", ".join(selected)
        + " FROM reading_samples r JOIN batteries b USING (battery_key)"
    )


def quote_identifier(name: str) -> str:
    """``name`` as a DuckDB identifier (a table, column or catalog), whatever it holds."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def _table_statements(name: str, table: Table) -> list[str]:
    columns = ", ".join(f'"{column.name}" {column.sql_type}' for column in table.columns)
    return [f"CREATE TABLE {name} ({columns})", f"COMMENT ON TABLE {name} IS {quote_literal(table.description)}",
            *(f'COMMENT ON COLUMN {name}."{column.name}" IS {quote_literal(column.description)}'
              for column in table.columns)]


def create_statements() -> list[str]:
    """Everything a new recording's file is made of, in order: tables, their comments, the views."""
    return [
        *(statement for name, table in TABLES.items() for statement in _table_statements(name, table)),
        _readings_view(),
        f"COMMENT ON VIEW readings IS {quote_literal(READINGS_VIEW_DESCRIPTION)}",
        *view_statements(),  # the analysis views (recordings/views.py)
        *(f"COMMENT ON VIEW {name} IS {quote_literal(text)}" for name, text in VIEW_DESCRIPTIONS.items()),
    ]
