"""Fit a battery model to a manufacturer's discharge tables (``battsim lab fit``).

:func:`fit_model` takes the tables (:mod:`battsim.engine.datasheet`) and a base model, runs every
chosen (end voltage, runtime) point of them through ``lab.discharge_many`` (the ``BatteryBank`` the
fleet runs) and adjusts the rate-capability parameters of the model with scipy's least squares on
the log of simulated / datasheet runtime. What it fits:

* ``capacity_over_c10``: the charge a full block holds (what the long runtimes need);
* ``available_charge_fraction`` and ``diffusion_rate_per_h``: the kinetic battery model's wells,
  i.e. how the deliverable charge falls with the rate (Manwell & McGowan 1993);
* ``rate_capability``: the plate area per Ah, i.e. the overpotential and knee at a C-rate
  (``physics.rate_reference_ah``), which is what 5-30 min runtimes of a high-rate block need.

The shape of the voltage curve (Tafel slope, knee, OCV line) stays the base model's: a table of
runtimes to one end voltage does not pin it down, and keeping it is what lets a fit to one end
voltage predict the others. Points can be held out of the fit (:class:`Selector`); the result
reports the error on them separately, which is how honest a fit is. This module is only ever
imported by the ``fit`` command, never on the simulation's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from battsim.engine import lab
from battsim.engine.datasheet import DischargeTable, duration_seconds
from battsim.engine.models import BatteryModel

FITTED_PARAMETERS = ("capacity_over_c10", "available_charge_fraction", "diffusion_rate_per_h", "rate_capability")
# Search bounds, inside the model's own field limits (models.py).
BOUNDS = {
    "capacity_over_c10": (1.0, 1.5),
    "available_charge_fraction": (0.1, 0.95),
    "diffusion_rate_per_h": (0.005, 20.0),
    "rate_capability": (0.2, 5.0),
}
# Steps per discharge while fitting (the runtime is within about 0.5 % of the converged one) and
# for the reported errors (the lab's own default, which the accuracy tests use).
FIT_STEPS = 250
REPORT_STEPS = lab.DISCHARGE_STEPS
# A point the model never brings to its end voltage within the bench's 200 h counts as that long;
# one already below it at the start counts as 1 s (so its log error is finite and large).
MIN_RUNTIME_S = 1.0
SIGNIFICANT_DIGITS = 5


@dataclass(frozen=True)
class Selector:
    """Which points of the tables: a table (by its file name, or the path as given), an end voltage
    (V/cell), a runtime column, or a table together with one of the others. None matches any."""

    table: str | None = None
    end_v_per_cell: float | None = None
    runtime_s: float | None = None

    def matches(self, table: DischargeTable) -> np.ndarray:
        """Boolean mask over ``table.loads``."""
        mask = np.ones(table.loads.shape, dtype=bool)
        if self.table is not None and not _names_table(self.table, table.source):
            mask[:] = False
        if self.end_v_per_cell is not None:
            mask &= np.isclose(table.end_v_per_cell, self.end_v_per_cell, atol=1e-6)[:, None]
        if self.runtime_s is not None:
            mask &= np.isclose(table.runtime_s, self.runtime_s)[None, :]
        return mask


def _names_table(name: str, source: str) -> bool:
    return source == name or source.replace("\\", "/").rsplit("/", 1)[-1] == name


def parse_selector(text: str, tables: list[DischargeTable]) -> Selector:
    """``1.75`` (an end voltage), ``10min`` (a runtime), ``cp.csv`` (a whole table) or ``cp.csv:1.75``.

    Raises ValueError naming what is wrong, including a selector that matches no point."""
    text = text.strip()
    table_name, _, part = text.rpartition(":") if ":" in text else ("", "", text)
    selector = None
    if not table_name and any(_names_table(part, table.source) for table in tables):
        selector = Selector(table=part)
    elif duration_seconds(part) is not None:
        selector = Selector(table=table_name or None, runtime_s=duration_seconds(part))
    else:
        try:
            selector = Selector(table=table_name or None, end_v_per_cell=float(part))
        except ValueError:
            raise ValueError(f"{text!r} is not an end voltage (1.75), a runtime column (10min), a table file name "
                             f"or TABLE:1.75") from None
    if table_name and not any(_names_table(table_name, table.source) for table in tables):
        raise ValueError(f"{text!r}: no table named {table_name!r} (tables: "
                         f"{', '.join(table.source for table in tables)})")
    if not any((selector.matches(table) & ~np.isnan(table.loads)).any() for table in tables):
        raise ValueError(f"{text!r} matches no load in the tables")
    return selector


def split_points(tables: list[DischargeTable], fit: list[Selector], holdout: list[Selector]):
    """(fitted, held out) boolean masks per table. A point is held out if any holdout selector
    matches it; otherwise fitted if no fit selector is given or one matches it."""
    fitted, held = [], []
    for table in tables:
        given = ~np.isnan(table.loads)
        out = np.zeros(table.loads.shape, dtype=bool)
        for selector in holdout:
            out |= selector.matches(table)
        chosen = np.ones(table.loads.shape, dtype=bool) if not fit else np.zeros(table.loads.shape, dtype=bool)
        for selector in fit:
            chosen |= selector.matches(table)
        held.append(given & out)
        fitted.append(given & chosen & ~out)
    return fitted, held


def simulated_runtime_s(model: BatteryModel, tables: list[DischargeTable], masks: list[np.ndarray],
                        steps: int = REPORT_STEPS) -> list[np.ndarray]:
    """Runtime of ``model`` at every masked load of each table (NaN elsewhere), s. All constant-current
    points run as one bank of jars, all constant-power points as another."""
    out = [np.full(table.loads.shape, np.nan) for table in tables]
    for constant_power in (False, True):
        chosen = [(index, *np.nonzero(mask)) for index, (table, mask) in enumerate(zip(tables, masks))
                  if table.constant_power == constant_power and mask.any()]
        if not chosen:
            continue
        loads = np.concatenate([tables[index].loads_per_cell(model.cells)[rows, columns]
                                for index, rows, columns in chosen])
        ends_per_point = np.concatenate([tables[index].end_v_per_cell[rows] for index, rows, _ in chosen])
        ends = sorted(set(ends_per_point.tolist()), reverse=True)
        kind = "power_w_per_cell" if constant_power else "current_a"
        runs = lab.discharge_many(model, **{kind: loads}, end_v_per_cell=ends, steps=steps)
        runtime = runs.runtime_s[[ends.index(end) for end in ends_per_point], np.arange(len(loads))]
        runtime = np.where(np.isnan(runtime), lab.MAX_DISCHARGE_S, np.maximum(runtime, MIN_RUNTIME_S))
        start = 0
        for index, rows, columns in chosen:
            out[index][rows, columns] = runtime[start:start + len(rows)]
            start += len(rows)
    return out


@dataclass
class FitResult:
    """The fitted model and simulated / datasheet runtime at every point of every table."""

    model: BatteryModel
    base: BatteryModel
    parameters: dict[str, float]
    tables: list[DischargeTable]
    fitted: list[np.ndarray]
    held_out: list[np.ndarray]
    ratio: list[np.ndarray]  # simulated / datasheet runtime; NaN where not evaluated
    evaluations: int = 0
    message: str = ""
    summary: dict = field(default_factory=dict)

    def errors(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([ratio[mask] - 1.0 for ratio, mask in zip(self.ratio, masks)])

    def error_summary(self, masks: list[np.ndarray]) -> dict | None:
        errors = self.errors(masks)
        if errors.size == 0:
            return None
        return {"points": int(errors.size), "worst_pct": round(float(np.max(np.abs(errors))) * 100, 2),
                "rms_pct": round(float(np.sqrt(np.mean(np.square(errors)))) * 100, 2)}

    def as_dict(self) -> dict:
        """What ``battsim lab fit --json`` prints."""
        tables = []
        for table, ratio, fitted, held in zip(self.tables, self.ratio, self.fitted, self.held_out):
            rows = []
            for row, end_v in enumerate(table.end_v_per_cell):
                columns = []
                for column, label in enumerate(table.column_labels):
                    if not (fitted[row, column] or held[row, column]):
                        continue
                    columns.append({"column": label, "runtime_s": float(table.runtime_s[column]),
                                    "load": float(table.loads[row, column]),
                                    "simulated_runtime_s": round(float(ratio[row, column] * table.runtime_s[column]), 1),
                                    "error_pct": round(float(ratio[row, column] - 1.0) * 100, 2),
                                    "role": "fit" if fitted[row, column] else "holdout"})
                if columns:
                    rows.append({"end_voltage_v_per_cell": float(end_v), "columns": columns})
            tables.append({"table": table.source, "units": table.units, "rows": rows})
        return {"model": self.model.name, "base_model": self.base.name,
                "parameters": self.parameters,
                "base_parameters": {name: getattr(self.base, name) for name in self.parameters},
                "fit": self.error_summary(self.fitted), "holdout": self.error_summary(self.held_out),
                "evaluations": self.evaluations, "tables": tables}


def fit_model(tables: list[DischargeTable], base: BatteryModel, *, fit: list[Selector] = (),
              holdout: list[Selector] = (), name: str | None = None, parameters: tuple[str, ...] = FITTED_PARAMETERS,
              max_evaluations: int = 60) -> FitResult:
    """Fit ``parameters`` of ``base`` to the chosen points of ``tables``; report every point's error.

    Pure: reads nothing and writes nothing. Raises ValueError when no point is left to fit."""
    fitted, held = split_points(tables, list(fit), list(holdout))
    count = sum(int(mask.sum()) for mask in fitted)
    if count == 0:
        raise ValueError("no point left to fit: the holdout (or --fit) leaves none of the tables' loads")
    if count < len(parameters):
        raise ValueError(f"{count} points cannot fit {len(parameters)} parameters ({', '.join(parameters)})")
    low = np.array([BOUNDS[name][0] for name in parameters])
    high = np.array([BOUNDS[name][1] for name in parameters])
    start = np.clip([getattr(base, name) for name in parameters], low, high)
    datasheet_s = [table.runtime_s[None, :] * np.ones_like(table.loads) for table in tables]

    def residuals(x):
        model = base.model_copy(update=dict(zip(parameters, x)))
        runtime = simulated_runtime_s(model, tables, fitted, steps=FIT_STEPS)
        return np.concatenate([np.log(run[mask] / sheet[mask]) for run, sheet, mask in zip(runtime, datasheet_s, fitted)])

    solution = least_squares(residuals, start, bounds=(low, high), diff_step=1e-2, x_scale=np.maximum(start, 1e-3),
                             max_nfev=max_evaluations)
    values = {name: float(f"{value:.{SIGNIFICANT_DIGITS}g}") for name, value in zip(parameters, solution.x)}
    model = base.model_copy(update={**values, "name": name or f"{base.name} (fitted)"})
    model = BatteryModel.model_validate(model.model_dump())  # the fitted values pass the model's own checks
    evaluated = [a | b for a, b in zip(fitted, held)]
    runtime = simulated_runtime_s(model, tables, evaluated)
    ratio = [np.where(mask, run / sheet, np.nan) for run, sheet, mask in zip(runtime, datasheet_s, evaluated)]
    return FitResult(model, base, values, list(tables), fitted, held, ratio, int(solution.nfev), solution.message)


def model_toml(model: BatteryModel, header: list[str] = ()) -> str:
    """The model as a TOML file that ``--model-file``, a fleet's ``[[models]]`` and the API read."""
    lines = [f"# {line}" if line else "#" for line in header]
    for key, value in model.model_dump(exclude_none=True).items():
        if isinstance(value, str):
            text = _toml_string(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = repr(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'
