"""Fit the built-in models that come from public datasheet tables, and plot each fit for docs/physics.md.

Every fit is ``battsim.engine.datasheet_fit.fit_model`` (what ``battsim lab fit`` runs) on the tables
in ``docs/reference/``; the base of each model holds only figures printed on its datasheet. Prints
the fitted parameters (to paste into ``models.py``) with the fit and held-out errors, and writes
``docs/validation/fit-<model>.png``. Also fits the USF12-100A on its 1.80 V/cell constant-current
row alone and checks the rest of its tables (the held-out test of ``tests/test_lab_fit.py``).

    .venv/bin/python tools/fit_datasheet_models.py [--out docs/validation]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from battsim.engine import lab  # noqa: E402
from battsim.engine.datasheet import read_table  # noqa: E402
from battsim.engine.datasheet_fit import fit_model, parse_selector, simulated_runtime_s  # noqa: E402
from battsim.engine.models import BatteryModel, get_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"

# Datasheet figures only (see the header of each table for the source). Float and boost: the low end
# of the printed ranges that fit the model's limits (float 2.25-2.30 V/cell printed, boost/cycle 2.40-2.50).
GP645 = BatteryModel(name="CSB GP 645", cells=3, capacity_ah_c10=4.31, internal_resistance_mohm=19.0,
                     design_life_years=5.0, mass_kg=0.84, float_v_per_cell=2.25, boost_v_per_cell=2.40)
GP12400 = BatteryModel(name="CSB GP 12400", cells=6, capacity_ah_c10=40.0, internal_resistance_mohm=8.1,
                       design_life_years=5.0, mass_kg=12.63, float_v_per_cell=2.25, boost_v_per_cell=2.40)
# name: (base, tables, --fit, --holdout). The built-ins are fitted at the end voltages the fleet uses
# (1.75 V/cell low-voltage disconnect, 1.80 the C10 rating) and checked at the others.
FITS = {
    "CSB GP 645": (GP645, ["csb-gp645-constant-current.csv"], ["1.80", "1.75"], []),
    "CSB GP 12400": (GP12400, ["csb-gp12400-constant-current.csv"], ["1.80", "1.75"], []),
    "USF12-100A": (get_model("USF12-100A"), ["usf12-100a-constant-current.csv", "usf12-100a-constant-power.csv"],
                   ["usf12-100a-constant-current.csv:1.80"], ["usf12-100a-constant-current.csv:1.75",
                                                             "usf12-100a-constant-power.csv"]),
}


def run_fit(name: str):
    base, files, fit, holdout = FITS[name]
    tables = [read_table(REFERENCE / file) for file in files]
    everything_else = [] if holdout else [f"{files[0]}:{end:.2f}" for end in tables[0].end_v_per_cell
                                          if f"{end:.2f}" not in fit]
    result = fit_model(tables, base, fit=[parse_selector(text, tables) for text in fit],
                       holdout=[parse_selector(text, tables) for text in holdout + everything_else], name=name)
    return result


def base_worst_pct(result, masks) -> float:
    """Worst runtime error of the base model (the USF12-100A's discharge constants) on the given points, %."""
    runtime = simulated_runtime_s(result.base, result.tables, masks)
    return round(max(float(np.nanmax(np.abs(run[mask] / table.runtime_s[np.nonzero(mask)[1]] - 1.0)))
                     for run, table, mask in zip(runtime, result.tables, masks) if mask.any()) * 100, 1)


def report(result) -> None:
    print(f"\n== {result.model.name}: {', '.join(f'{k}={v}' for k, v in result.parameters.items())}")
    print(f"   fit {result.error_summary(result.fitted)}  held out {result.error_summary(result.held_out)}")
    print(f"   the base model before the fit: worst {base_worst_pct(result, result.fitted)} % on the fitted points, "
          f"{base_worst_pct(result, result.held_out)} % on the held-out ones")
    for table in result.as_dict()["tables"]:
        for row in table["rows"]:
            print(f"   {Path(table['table']).name:36} {row['end_voltage_v_per_cell']:.2f} "
                  + " ".join(f"{c['column']}:{c['error_pct']:+.1f}{'*' if c['role'] == 'holdout' else ''}"
                             for c in row["columns"]))


def plot(result, out: Path) -> Path:
    model = result.model
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    ax, err = axes
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(t.end_v_per_cell) for t in result.tables)))
    for table, ratio, fitted in zip(result.tables, result.ratio, result.fitted):
        marker = "s" if table.constant_power else "o"
        loads = table.loads_per_cell(model.cells)
        kind = "power_w_per_cell" if table.constant_power else "current_a"
        for row, (end, color) in enumerate(zip(table.end_v_per_cell, colors)):
            given = ~np.isnan(loads[row])
            if not given.any():
                continue
            sweep = np.geomspace(np.nanmin(loads[row]) * 0.9, np.nanmax(loads[row]) * 1.05, 30)
            runtime = lab.discharge_many(model, **{kind: sweep}, end_v_per_cell=(end,)).runtime_s[0]
            label = f"{'CP' if table.constant_power else 'CC'} {end:.2f} V/cell"
            ax.loglog(runtime / 3600, sweep, "-", color=color, lw=1)
            for mask, fill in ((fitted[row] & given, color), (~fitted[row] & given, "none")):
                if mask.any():
                    ax.loglog(table.runtime_s[mask] / 3600, loads[row][mask], marker, color=color, mfc=fill)
            err.semilogx(table.runtime_s[given] / 3600, (ratio[row][given] - 1) * 100, marker + "-", color=color,
                         mfc=color if fitted[row].any() else "none", label=label, lw=0.8)
    unit = "W per cell (squares) / A (circles)" if any(t.constant_power for t in result.tables) else "A"
    ax.set(xlabel="runtime, h", ylabel=f"load, {unit}",
           title=f"{model.name}: datasheet (filled: fitted, open: held out), lines: battsim")
    err.axhspan(-5, 5, color="0.9")
    err.set(xlabel="datasheet runtime, h", ylabel="simulated / datasheet runtime - 1, %", title="runtime error")
    err.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / f"fit-{model.name.lower().replace(' ', '-')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "validation")
    args = parser.parse_args()
    for name in FITS:
        result = run_fit(name)
        report(result)
        print("  ", plot(result, args.out))


if __name__ == "__main__":
    main()
