"""How a recording's values are shown: one timestamp format, and every number at its channel's resolution.

``battsim query`` (table, CSV, JSON), ``battsim export`` (CSV, JSON) and ``battsim replay`` (JSON lines) all
show values this way, so a row copied from one matches the others:

- **Timestamps** are ISO 8601 in UTC with the offset written out: ``2026-01-01T00:00:00+00:00``. A
  fraction of a second appears only when the instant has one (``2026-01-03T13:29:40.912345+00:00``:
  events such as a random outage fall between readings); readings are on whole seconds. Dates (a
  view's local ``day``) are ``2026-01-01``.
- **Numbers** print at the resolution of the channel they come from, found from the unit in the
  column's name (the project names every quantity with its unit: ``voltage_v``, ``min(voltage_v)``,
  ``ah_delivered``): volts to 1 mV, amperes to 0.01 A, °C to 0.1 °C, mΩ to 0.01 mΩ, percent to 0.1 %
  (the monitor's resolutions, :mod:`battsim.engine.sensors`, so a measured value loses nothing).
  Ground truth (``true_*`` columns) was never measured: it prints, like any floating-point column with
  no unit in its name, its shortest exact form (a 32-bit value as ``97.88844``, never
  ``97.88843536376953``).

Parquet keeps the stored types (timestamps adjusted to UTC, 32-bit floats), since its readers do
their own formatting.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np

from battsim.engine.sensors import (
    CURRENT_RESOLUTION_A,
    RESISTANCE_RESOLUTION_MOHM,
    TEMPERATURE_RESOLUTION_C,
    VOLTAGE_RESOLUTION_V,
)

# The formats a command may write, by the same names everywhere (each command takes those that fit it).
FORMATS = ("table", "csv", "json", "parquet")


def _decimals(step: float) -> int:
    return round(-math.log10(step))


# Decimals by the unit word of a column's name.
UNIT_DECIMALS = {
    "v": _decimals(VOLTAGE_RESOLUTION_V),  # 1 mV per jar (a string's voltage is read to 10 mV)
    "a": _decimals(CURRENT_RESOLUTION_A),  # the string's Hall sensor
    "c": _decimals(TEMPERATURE_RESOLUTION_C),
    "mohm": _decimals(RESISTANCE_RESOLUTION_MOHM),
    "pct": 1,  # the monitor keeps its state-of-charge and state-of-health estimates to 0.1 %
    "ah": 2,
    "wh": 1,
    "s": 1,  # durations: events fall between readings
    "min": 1,
    "minutes": 1,
    "h": 2,
    "hours": 2,
}
_FLOATING = ("FLOAT", "DOUBLE", "REAL")


def unit_decimals(column: str, type_name: str = "DOUBLE") -> int | None:
    """Decimals to show for a floating-point column, from the last unit word of its name (None: no unit, or
    ground truth, which no sensor resolved)."""
    if not (type_name in _FLOATING or type_name.startswith("DECIMAL")) or "true_" in column.lower():
        return None
    for word in reversed(re.split(r"[^0-9a-zA-Z]+|_", column.lower())):
        if word in UNIT_DECIMALS:
            return UNIT_DECIMALS[word]
    return None


def iso_utc(moment: datetime) -> str:
    """A timestamp as shown everywhere: ISO 8601, UTC, ``+00:00``, a fraction only when it has one."""
    if moment.tzinfo is None:
        return moment.isoformat()  # a local wall-clock time (TIMESTAMP without zone): shown as it is
    return moment.astimezone(UTC).isoformat()


def iso_utc_sql(expression: str) -> str:
    """:func:`iso_utc` in DuckDB SQL, for a ``TIMESTAMP WITH TIME ZONE`` expression."""
    utc = f"({expression}) AT TIME ZONE 'UTC'"
    return (f"CASE WHEN epoch_us({expression}) % 1000000 = 0 THEN strftime({utc}, '%Y-%m-%dT%H:%M:%S+00:00') "
            f"ELSE strftime({utc}, '%Y-%m-%dT%H:%M:%S.%f+00:00') END")


def rounded_sql(expression: str, decimals: int) -> str:
    """A number at ``decimals`` in DuckDB SQL, as an exact decimal (so CSV and JSON print no float noise);
    NaN and infinity become NULL, as in JSON."""
    return f"CASE WHEN isfinite({expression}) THEN ({expression})::DECIMAL(38, {decimals}) END"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    decimals: int | None  # None: not a number with a unit

    @classmethod
    def of(cls, name: str, type_name: str) -> Column:
        return cls(name, type_name, unit_decimals(name, type_name))


def columns_of(names: Sequence[str], types: Sequence[str]) -> list[Column]:
    return [Column.of(name, type_name) for name, type_name in zip(names, types)]


def presented_sql(select: str, described: Sequence[tuple[str, str]]) -> str:
    """``select`` with its timestamps as :func:`iso_utc` text and its unit columns at their resolution.

    ``described`` is the (name, type) of each column of ``select``, as DuckDB's ``DESCRIBE`` gives them.
    """
    replace = []
    for name, type_name in described:
        quoted = '"' + name.replace('"', '""') + '"'
        if type_name == "TIMESTAMP WITH TIME ZONE":
            replace.append(f"{iso_utc_sql(quoted)} AS {quoted}")
        elif (decimals := unit_decimals(name, type_name)) is not None:
            replace.append(f"{rounded_sql(quoted, decimals)} AS {quoted}")
        elif type_name == "FLOAT":  # its shortest text, read back as a double: JSON would show 24.80000114440918
            replace.append(f"CASE WHEN isfinite({quoted}) THEN {quoted}::VARCHAR::DOUBLE END AS {quoted}")
    if not replace:
        return select
    return f"SELECT * REPLACE ({', '.join(replace)}) FROM ({select})"


# ------------------------------------------------------------------------------------ Python values
def _number(value: float, decimals: int | None) -> float | None:
    if not math.isfinite(value):
        return None
    if decimals is None:
        return value
    return round(value, decimals) + 0.0  # + 0.0: no "-0.00"


def json_value(value, decimals: int | None = None):
    """A DuckDB result value as plain JSON: ISO 8601 times in UTC, NaN/inf as null, numbers as numbers
    (at ``decimals`` if given)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _number(value, decimals)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return _number(float(value), decimals)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, np.generic):
        return json_value(value.item(), decimals)
    return str(value)


def text_value(value, decimals: int | None = None) -> str:
    """A value as CSV or table text: numbers at ``decimals`` with their trailing zeros (``24.0``), JSON
    for nested values, empty for NULL, NaN and infinity."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    converted = json_value(value, decimals)
    if converted is None:
        return ""
    if isinstance(converted, float) and decimals is not None:
        return f"{converted:.{decimals}f}"
    if isinstance(converted, (dict, list)):
        return json.dumps(converted, ensure_ascii=False)
    return str(converted)


def present_row(row: Sequence, columns: Sequence[Column]) -> list[str]:
    return [text_value(value, column.decimals) for value, column in zip(row, columns)]


def present_json_row(row: Sequence, columns: Sequence[Column]) -> dict:
    return {column.name: json_value(value, column.decimals) for value, column in zip(row, columns)}


# ------------------------------------------------------------------------------------ the table
@dataclass(frozen=True)
class TableLayout:
    """Column widths for a terminal table that never cuts a value of one word (an id, a time, a number).

    A column whose values are all single words gets the width of its longest value (and header); only
    columns of text with spaces (JSON details, messages) wrap. If the single-word columns alone need
    more than ``max_width``, the table is wider than asked rather than cut.
    """

    min_widths: list[int]
    wraps: list[bool]
    width: int


# Borders and padding of a rich table with the default box: "│ " before each column, " │" at the end.
_PER_COLUMN = 3
_EDGE = 1


def table_layout(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int | None) -> TableLayout:
    natural = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    wraps = [any(" " in r[i] or "\n" in r[i] for r in rows) for i in range(len(headers))]
    minimum = [0 if wrap else width for wrap, width in zip(wraps, natural)]
    # A wrapping column keeps at least its header's longest word and a readable few characters.
    minimum = [min(n, max(12, *(len(w) for w in h.split()))) if wrap else m
               for wrap, m, n, h in zip(wraps, minimum, natural, headers)]
    needed = sum(minimum) + _PER_COLUMN * len(headers) + _EDGE
    whole = sum(natural) + _PER_COLUMN * len(headers) + _EDGE
    width = whole if max_width is None else max(needed, min(whole, max_width))
    return TableLayout(minimum, wraps, width)
