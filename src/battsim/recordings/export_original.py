"""Export a recording in the original project's dataset layout, for its ML notebooks.

``battsim export run.duckdb --out dataset/ --layout original`` writes, per site, two gzip-compressed CSV
files into one folder:

    battery_sensors_<site_id>.csv.gz   ts, battery_id, voltage_v, temperature_c, resistance_mohm,
                                       conductance_s, soc_pct, soh_pct
    string_sensors_<site_id>.csv.gz    ts, string_id, voltage_v, current_a, mode, ripple_voltage_rms_v,
                                       ripple_current_rms_a

``ts`` is naive UTC, ``YYYY-MM-DD HH:MM:SS``. Values are the measured ones (what the original generator
wrote): ``resistance_mohm`` the last ohmic test's, ``conductance_s`` its inverse (1000 / mΩ, siemens),
``soc_pct`` and ``soh_pct`` the monitor's estimates; a missing measurement is an empty field. ``mode`` is
the rectifier mode by name (float, boost, equalize, discharge, disconnected). Rows are in time order, then
by id. The folder is written beside ``out`` and renamed into place when complete, with a
``.battsim-export`` marker so that ``--overwrite`` can replace it.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from battsim.engine.battery import MODE_NAMES
from battsim.recordings.outputs import EXPORT_MARKER
from battsim.recordings.schema import quote_literal

LAYOUT = "original"
BATTERY_COLUMNS = ("ts", "battery_id", "voltage_v", "temperature_c", "resistance_mohm", "conductance_s", "soc_pct",
                   "soh_pct")
STRING_COLUMNS = ("ts", "string_id", "voltage_v", "current_a", "mode", "ripple_voltage_rms_v", "ripple_current_rms_a")
_TS = "strftime(timezone('UTC', {column}), '%Y-%m-%d %H:%M:%S') AS ts"
_OPTIONS = "FORMAT csv, HEADER true, COMPRESSION gzip"


def _rounded(column: str, digits: int) -> str:
    # To the monitor's resolution, as a DOUBLE: a FLOAT printed as text shows its binary error (13.667001).
    return f"round(s.{column}::DOUBLE, {digits})"


def battery_sensors_sql(site_key: int) -> str:
    resistance = _rounded("internal_resistance_mohm", 2)
    return f"""SELECT {_TS.format(column="s.timestamp")}, b.battery_id, {_rounded("voltage_v", 3)} AS voltage_v,
       {_rounded("temperature_c", 1)} AS temperature_c, {resistance} AS resistance_mohm,
       round(1000.0 / nullif({resistance}, 0), 3) AS conductance_s, {_rounded("soc_pct", 1)} AS soc_pct,
       {_rounded("soh_pct", 1)} AS soh_pct
FROM reading_samples s JOIN batteries b USING (battery_key) JOIN sites z USING (site_id)
WHERE z.site_key = {int(site_key)}
ORDER BY s.timestamp, b.battery_id"""


def string_sensors_sql(site_key: int) -> str:
    modes = "[" + ", ".join(quote_literal(name) for name in MODE_NAMES) + "]"
    return f"""SELECT {_TS.format(column="s.timestamp")}, t.string_id, {_rounded("voltage_v", 2)} AS voltage_v,
       {_rounded("current_a", 2)} AS current_a, {modes}[s.mode + 1] AS mode,
       {_rounded("ripple_voltage_rms_v", 3)} AS ripple_voltage_rms_v,
       {_rounded("ripple_current_rms_a", 2)} AS ripple_current_rms_a
FROM string_readings s JOIN strings t USING (string_key) JOIN sites z USING (site_id)
WHERE z.site_key = {int(site_key)}
ORDER BY s.timestamp, t.string_id"""


def write_original_layout(connection: duckdb.DuckDBPyConnection, staged: Path, recording: str | Path) -> dict[str, int]:
    """Write the recording ``connection`` reads into the directory ``staged`` in the original layout (two files
    per site and the export marker); the rows written per file. export.py stages and places the directory."""
    rows: dict[str, int] = {}
    sites = connection.execute("SELECT site_key, site_id FROM sites ORDER BY site_key").fetchall()
    for site_key, site_id in sites:
        for name, query in ((f"battery_sensors_{site_id}.csv.gz", battery_sensors_sql(site_key)),
                            (f"string_sensors_{site_id}.csv.gz", string_sensors_sql(site_key))):
            target = quote_literal(str(staged / name))
            rows[name] = connection.execute(f"COPY ({query}) TO {target} ({_OPTIONS})").fetchone()[0]
    (staged / EXPORT_MARKER).write_text(json.dumps({"recording": str(recording), "layout": LAYOUT, "rows": rows}) + "\n")
    return rows
