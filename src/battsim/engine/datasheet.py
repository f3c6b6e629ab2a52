"""A manufacturer's discharge table, read from CSV and checked cell by cell.

The shape is the one datasheets print (``docs/reference/usf12-100a-constant-current.csv``): one row
per end voltage (V/cell), one column per runtime, each cell the load that runs the block to that end
voltage in that time. The unit of the loads is declared in a comment line ``# units: A`` (constant
current, amperes; the same for a cell and its block), ``# units: W/cell`` or ``# units: W/block``
(constant power), or, for a table without that line, given by the caller. Runtimes are written
``10min``, ``1h``, ``1.5h``, ``90s`` (also ``MIN``, ``HR``). An empty cell is a load the datasheet
does not give. Anything else wrong is a :class:`TableError` naming the file, the row (line number)
and the column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from battsim.user_files import read_user_file

UNITS = ("A", "W/cell", "W/block")
FIRST_HEADERS = ("end_voltage_per_cell", "end_voltage_v_per_cell")
_UNITS_LINE = re.compile(r"^#\s*units\s*:\s*(\S+)\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|min|h|hr)$", re.IGNORECASE)
_SECONDS_PER_UNIT = {"s": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
# What the bench can run (engine/lab.py stops at 200 h) and what datasheets print: 1 min to 100 h,
# end voltages 1.5-2.05 V/cell (the range `battsim lab discharge --end-voltage` accepts).
MIN_RUNTIME_S, MAX_RUNTIME_S = 60.0, 100 * 3600.0
MIN_END_V, MAX_END_V = 1.5, 2.05


class TableError(ValueError):
    """A discharge table that cannot be used; the message names the file, row and column."""


@dataclass(frozen=True)
class DischargeTable:
    """Loads per end voltage × runtime. ``loads[i, j]`` runs the block to ``end_v_per_cell[i]`` in
    ``runtime_s[j]``; NaN where the datasheet gives none."""

    source: str
    units: str  # one of UNITS
    end_v_per_cell: np.ndarray
    column_labels: tuple[str, ...]
    runtime_s: np.ndarray
    loads: np.ndarray

    @property
    def constant_power(self) -> bool:
        return self.units != "A"

    def loads_per_cell(self, cells: int) -> np.ndarray:
        """Amperes, or watts per cell (what ``lab.discharge_many`` takes) for a block of ``cells`` cells."""
        return self.loads / cells if self.units == "W/block" else self.loads


def duration_seconds(label: str) -> float | None:
    """``10min`` → 600, ``1.5h`` → 5400; None when the label is not a runtime."""
    match = _DURATION.match(label.strip())
    return None if match is None else float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2).lower()]


def normalise_units(text: str) -> str | None:
    """The accepted spelling of a unit (case-insensitive), or None."""
    return next((unit for unit in UNITS if unit.lower() == text.strip().lower()), None)


def parse_table(text: str, source: str, units: str | None = None) -> DischargeTable:
    """Read a discharge table from CSV text; ``units`` applies when the text has no ``# units:`` line."""
    declared, rows = None, []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = _UNITS_LINE.match(stripped)
            if match is not None:
                declared = normalise_units(match.group(1))
                if declared is None:
                    raise TableError(f"{source}: line {line_number}: units {match.group(1)!r} is not one of "
                                     f"{', '.join(UNITS)}")
            continue
        rows.append((line_number, next(csv.reader([line]))))
    if declared is None and units is not None:
        declared = normalise_units(units)
        if declared is None:
            raise TableError(f"{source}: units {units!r} is not one of {', '.join(UNITS)}")
    if declared is None:
        raise TableError(f"{source}: the units of the loads are not given: add a line '# units: A' "
                         f"(or W/cell, W/block), or pass --units")
    if not rows:
        raise TableError(f"{source}: no header row (expected end_voltage_per_cell,10min,...,20h)")
    header_line, header = rows[0]
    if header[0].strip().lower() not in FIRST_HEADERS:
        raise TableError(f"{source}: line {header_line}, column 1: {header[0]!r} should be end_voltage_per_cell")
    labels = tuple(label.strip() for label in header[1:])
    if not labels:
        raise TableError(f"{source}: line {header_line}: no runtime columns after end_voltage_per_cell")
    seconds = []
    for column, label in enumerate(labels, start=2):
        value = duration_seconds(label)
        if value is None:
            raise TableError(f"{source}: line {header_line}, column {column}: {label!r} is not a runtime "
                             f"(write 10min, 1h, 1.5h or 90s)")
        if not MIN_RUNTIME_S <= value <= MAX_RUNTIME_S:
            raise TableError(f"{source}: line {header_line}, column {column} ({label}): outside 1 min-100 h")
        if seconds and value <= seconds[-1]:
            raise TableError(f"{source}: line {header_line}, column {column} ({label}): runtimes must increase "
                             f"from left to right")
        seconds.append(value)
    if len(rows) < 2:
        raise TableError(f"{source}: no rows of loads under the header")
    end_voltages, loads = [], []
    for line_number, row in rows[1:]:
        where = f"{source}: line {line_number}"
        if len(row) != len(header):
            raise TableError(f"{where}: {len(row)} cells, the header has {len(header)}")
        end_v = _number(row[0], f"{where}, column 1 (end_voltage_per_cell)")
        if end_v is None or not MIN_END_V <= end_v <= MAX_END_V:
            raise TableError(f"{where}, column 1 (end_voltage_per_cell): {row[0]!r} is not an end voltage "
                             f"of {MIN_END_V}-{MAX_END_V} V/cell")
        if end_v in end_voltages:
            raise TableError(f"{where}, column 1 (end_voltage_per_cell): {end_v:g} V/cell appears twice")
        values = [_number(cell, f"{where}, column {column} ({label})")
                  for column, (cell, label) in enumerate(zip(row[1:], labels), start=2)]
        _check_row(values, labels, where)
        end_voltages.append(end_v)
        loads.append([np.nan if value is None else value for value in values])
    table = np.array(loads, dtype=np.float64)
    if np.isnan(table).all():
        raise TableError(f"{source}: every load is empty")
    return DischargeTable(source, declared, np.array(end_voltages), labels, np.array(seconds), table)


def _number(cell: str, where: str) -> float | None:
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise TableError(f"{where}: {text!r} is not a number") from None
    if not np.isfinite(value):
        raise TableError(f"{where}: {text!r} is not a finite number")
    return value


def _check_row(values: list[float | None], labels: tuple[str, ...], where: str) -> None:
    """Loads are positive and fall as the runtime grows: a longer runtime at a higher load is a typo."""
    previous = None
    for column, (value, label) in enumerate(zip(values, labels), start=2):
        if value is None:
            continue
        if value <= 0:
            raise TableError(f"{where}, column {column} ({label}): the load must be positive, not {value:g}")
        if previous is not None and value >= previous[0]:
            raise TableError(f"{where}, column {column} ({label}): {value:g} is not below {previous[0]:g} at "
                             f"{previous[1]}; loads must fall as the runtime grows")
        previous = (value, label)


def read_table(path: str | Path, units: str | None = None) -> DischargeTable:
    """Read a discharge table CSV file (see :func:`parse_table`)."""
    text = read_user_file(path, TableError, "a CSV file")
    return parse_table(text, str(path), units)
