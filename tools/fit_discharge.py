"""Fit the discharge constants of a battery model to the USF12-100A datasheet tables.

Development script: runs the constant-current
and constant-power discharges through ``battsim.engine.lab`` (the engine's own code) and adjusts
the kinetic-battery and overpotential constants of :class:`BatteryModel` to minimise the log error
of the runtimes to 1.80 and 1.75 V/cell at every column from 10 min to 20 h. Prints the fitted
values to paste into ``models.py`` defaults, and the error table.

    .venv/bin/python tools/fit_discharge.py

A block's own table is fitted with ``battsim lab fit`` instead (``engine/datasheet_fit.py``; the
built-ins: ``tools/fit_datasheet_models.py``). With ``--temperature`` it fits instead ``physics.KINETICS_TABLE_FACTOR``: the
multiplier on the kinetic battery model's rate (and divisor of the discharge knee) at each table
temperature such that a 10 h discharge delivers ``physics.CAPACITY_TABLE_FACTOR`` of its 25 °C charge.

    .venv/bin/python tools/fit_discharge.py --temperature
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from battsim.engine import lab, physics
from battsim.engine.models import get_model

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
FITTED = ("capacity_over_c10", "available_charge_fraction", "diffusion_rate_per_h", "tafel_v_per_cell",
          "tafel_reference_c_rate", "depletion_v_per_cell")
LOWER = np.array([1.0, 0.1, 0.05, 0.0, 0.005, 0.0])
UPPER = np.array([1.4, 0.9, 20.0, 1.0, 50.0, 0.5])
END_VOLTAGES = (1.80, 1.75)


def column_seconds(label: str) -> float:
    return float(label[:-3]) * 60.0 if label.endswith("min") else float(label[:-1]) * 3600.0


def read_table(path: Path) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """(runtime seconds per column, {end V/cell: loads per column}) of a datasheet CSV."""
    rows = [row for row in csv.reader(line for line in path.open() if not line.startswith("#"))]
    header, body = rows[0], rows[1:]
    seconds = np.array([column_seconds(label) for label in header[1:]])
    return seconds, {float(row[0]): np.array([float(x) for x in row[1:]]) for row in body}


def errors(model, steps: int = 500) -> dict[str, np.ndarray]:
    """Simulated / datasheet runtime for CC to 1.80 and 1.75, CP to 1.80 and 1.75 V/cell."""
    out = {}
    for kind, name in (("current_a", "constant-current"), ("power_w_per_cell", "constant-power")):
        seconds, table = read_table(REFERENCE / f"usf12-100a-{name}.csv")
        for end in END_VOLTAGES:
            runs = lab.discharge_many(model, **{kind: table[end]}, end_v_per_cell=(end,), steps=steps)
            out[f"{name} {end:.2f}"] = runs.runtime_s[0] / seconds
    return out


def capacity_ratio(model, temperature_c: float) -> float:
    c10_current = model.capacity_ah_c10 / 10.0
    at = lab.discharge(model, current_a=c10_current, temperature_c=temperature_c).delivered_ah
    return at / lab.discharge(model, current_a=c10_current, temperature_c=25.0).delivered_ah


def fit_kinetics_temperature() -> None:
    """Bisect each temperature's kinetics factor (in log) to its capacity target; twice round, since
    neighbouring entries share the interpolation between them."""
    model = get_model("USF12-100A")
    factors = physics.KINETICS_TABLE_FACTOR
    for _ in range(2):
        for index, (temperature_c, target) in enumerate(zip(physics.CAPACITY_TABLE_C, physics.CAPACITY_TABLE_FACTOR)):
            if temperature_c == physics.REFERENCE_TEMPERATURE_C:
                continue
            low, high = np.log(0.01), np.log(100.0)
            for _ in range(30):
                factors[index] = np.exp(0.5 * (low + high))
                if capacity_ratio(model, temperature_c) < target:
                    low = np.log(factors[index])
                else:
                    high = np.log(factors[index])
    print("KINETICS_TABLE_FACTOR = np.array([" + ", ".join(f"{f:.4g}" for f in factors) + "])")
    for temperature_c, target in zip(physics.CAPACITY_TABLE_C, physics.CAPACITY_TABLE_FACTOR):
        print(f"{temperature_c:6.1f} °C: capacity {capacity_ratio(model, temperature_c):.4f} (target {target})")


def main() -> None:
    if "--temperature" in sys.argv:
        fit_kinetics_temperature()
        return
    from scipy.optimize import least_squares

    base = get_model("USF12-100A")
    start = np.array([getattr(base, name) for name in FITTED])

    def residuals(x):
        model = base.model_copy(update=dict(zip(FITTED, x)))
        ratios = np.concatenate(list(errors(model, steps=300).values()))
        return np.log(np.where(np.isfinite(ratios), ratios, 3.0))

    result = least_squares(residuals, np.clip(start, LOWER, UPPER), bounds=(LOWER, UPPER), diff_step=1e-3,
                           max_nfev=int(sys.argv[1]) if len(sys.argv) > 1 else 200, verbose=1)
    fitted = base.model_copy(update=dict(zip(FITTED, result.x)))
    for name, value in zip(FITTED, result.x):
        print(f"{name} = {value:.4g}")
    for label, ratio in errors(fitted).items():
        print(f"{label:>22}: worst {np.max(np.abs(ratio - 1)) * 100:5.1f} %  ", " ".join(f"{r:5.3f}" for r in ratio))


if __name__ == "__main__":
    main()
