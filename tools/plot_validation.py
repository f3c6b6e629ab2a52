"""Validation plots of the battery physics against the published figures, for docs/physics.md.

Every simulated point comes from ``battsim.engine.lab`` (the fleet's own BatteryBank).

    .venv/bin/python tools/plot_validation.py [--out docs/validation]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from battsim.engine import lab  # noqa: E402
from battsim.engine.battery import Mode  # noqa: E402
from battsim.engine.models import get_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
MODEL = get_model("USF12-100A")
# vrla-facts.md tables.
CAPACITY_VS_TEMPERATURE = {-15.0: 0.65, 0.0: 0.86, 25.0: 1.00, 40.0: 1.03}
FLOAT_ESCALATION_MA_PER_AH = {25.0: 0.125, 35.0: 0.23, 45.0: 0.41, 55.0: 0.75, 65.0: 1.37, 75.0: 2.5}


def read_table(name: str):
    path = REFERENCE / f"usf12-100a-{name}.csv"
    rows = list(csv.reader(line for line in path.open() if not line.startswith("#")))
    seconds = np.array([float(c[:-3]) * 60 if c.endswith("min") else float(c[:-1]) * 3600 for c in rows[0][1:]])
    return seconds, {float(row[0]): np.array([float(x) for x in row[1:]]) for row in rows[1:]}


def save(fig, out: Path, name: str) -> None:
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    print(out / name)


def runtime_plot(out: Path, table_name: str, kind: str, ends, unit: str, filename: str) -> None:
    seconds, table = read_table(table_name)
    fig, (ax, err) = plt.subplots(1, 2, figsize=(11, 4.4))
    for end, color in zip(ends, ("tab:blue", "tab:orange")):
        loads = table[end]
        sweep = np.geomspace(loads.min() * 0.8, loads.max() * 1.1, 40)
        simulated = lab.discharge_many(MODEL, **{kind: sweep}, end_v_per_cell=(end,)).runtime_s[0]
        at_columns = lab.discharge_many(MODEL, **{kind: loads}, end_v_per_cell=(end,)).runtime_s[0]
        ax.loglog(seconds / 3600, loads, "o", color=color, label=f"datasheet to {end:.2f} V/cell")
        ax.loglog(simulated / 3600, sweep, "-", color=color, label=f"battsim to {end:.2f} V/cell")
        err.semilogx(seconds / 3600, (at_columns / seconds - 1) * 100, "o-", color=color, label=f"{end:.2f} V/cell")
    ax.set_xlabel("runtime, h")
    ax.set_ylabel(unit)
    ax.set_title(f"USF12-100A {table_name} discharge at 25 °C")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    err.axhspan(-10, 10, color="tab:green", alpha=0.1, label="±10 % target")
    err.axhline(0, color="k", lw=0.5)
    err.set_ylim(-15, 15)
    err.set_xlabel("datasheet runtime, h")
    err.set_ylabel("simulated / datasheet − 1, %")
    err.set_title("runtime error at every datasheet column")
    err.grid(True, which="both", alpha=0.3)
    err.legend(fontsize=8)
    save(fig, out, filename)


def discharge_curves(out: Path) -> None:
    seconds, table = read_table("constant-current")
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for column in (0, 3, 5, 9, 12, 13):
        current = table[1.75][column]
        result = lab.discharge(MODEL, current_a=current, end_v_per_cell=1.70)
        curve = np.array(result.curve)
        line, = ax.semilogx(np.maximum(curve[:, 0], 1) / 60, curve[:, 1] / MODEL.cells, label=f"{current:g} A")
        ax.plot(seconds[column] / 60, 1.75, "o", color=line.get_color())
        # The 1.80 V/cell row at this current, interpolated in log-log between its columns.
        to_180_s = np.exp(np.interp(np.log(current), np.log(table[1.80][::-1]), np.log(seconds[::-1])))
        ax.plot(to_180_s / 60, 1.80, "s", color=line.get_color(), mfc="none")
    ax.axhline(1.75, color="grey", lw=0.5)
    ax.axhline(1.80, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("minutes (log)")
    ax.set_ylabel("terminal voltage, V/cell")
    ax.set_ylim(1.65, 2.15)
    ax.set_title("USF12-100A simulated discharge curves; markers: datasheet time to 1.75 (●) and 1.80 (□) V/cell")
    ax.title.set_fontsize(9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title="constant current")
    save(fig, out, "discharge-curves.png")


def capacity_vs_temperature(out: Path) -> None:
    temperatures = np.array([-15.0, -5.0, 0.0, 10.0, 25.0, 30.0, 40.0])
    c10 = MODEL.capacity_ah_c10 / 10
    delivered = np.array([lab.discharge(MODEL, current_a=c10, temperature_c=t).delivered_ah for t in temperatures])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(temperatures, delivered / delivered[temperatures == 25.0][0] * 100, "o-", label="battsim, 10 h rate")
    ax.plot(list(CAPACITY_VS_TEMPERATURE), np.array(list(CAPACITY_VS_TEMPERATURE.values())) * 100, "s",
            label="vrla-facts.md")
    ax.axhspan(80, 90, xmin=0, xmax=1, alpha=0)
    ax.errorbar([0.0, 40.0], [85, 106], yerr=[5, 6], fmt="none", ecolor="tab:green", capsize=6, label="issue target")
    ax.set_xlabel("temperature, °C")
    ax.set_ylabel("capacity relative to 25 °C, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "capacity-vs-temperature.png")


def float_current(out: Path) -> None:
    temperatures = np.arange(20.0, 61.0, 5.0)
    fixed = [lab.float_charge(MODEL, t, voltage_v_per_cell=2.25, hours=24).float_current_ma_per_ah for t in temperatures]
    compensated = [lab.float_charge(MODEL, t, hours=24).float_current_ma_per_ah for t in temperatures]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(temperatures, fixed, "o-", label="battsim at 2.25 V/cell")
    ax.semilogy(temperatures, compensated, "^-", label="battsim, compensated float (−3 mV/°C, 5-40 °C)")
    ax.semilogy(list(FLOAT_ESCALATION_MA_PER_AH), list(FLOAT_ESCALATION_MA_PER_AH.values()), "s",
                label="vrla-facts.md escalation at 2.25 V/cell")
    ax.set_xlabel("room temperature, °C")
    ax.set_ylabel("float current, mA/Ah")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "float-current.png")


def life_vs_temperature(out: Path) -> None:
    temperatures = np.arange(20.0, 51.0, 5.0)
    years = {profile: [lab.life(MODEL, t, profile).years_to_eol for t in temperatures]
             for profile in ("healthy", "accelerated", "failing")}
    fig, ax = plt.subplots(figsize=(6, 4))
    for profile, values in years.items():
        ax.semilogy(temperatures, values, "o-", label=f"battsim, {profile}")
    ax.semilogy(temperatures, MODEL.design_life_years * 0.5 ** ((temperatures - 25) / 10), "k--",
                label="halving per 10 °C (C&D)")
    ax.set_xlabel("constant room temperature, °C")
    ax.set_ylabel("years on float to 80 % capacity")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "life-vs-temperature.png")


def thermal_runaway(out: Path) -> None:
    fig, (temp_ax, current_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    cases = [("internal short, 25 °C room", dict(failures=("internal_short",))),
             ("runaway trigger (end-stage dry-out), 25 °C room", dict(failures=("thermal_runaway",))),
             ("same, charger cut-off at 50 °C", dict(failures=("thermal_runaway",), charge_cutoff_c=50.0)),
             ("healthy jar, 25 °C room", dict())]
    for label, options in cases:
        result = lab.float_charge(MODEL, 25.0, hours=36, **options)
        trace = np.array([[0.0, 25.0, np.nan, np.nan]] + result.trace)
        temp_ax.plot(trace[:, 0], trace[:, 1], label=label)
        current_ax.semilogy(trace[:, 0], trace[:, 2], label=label)
        if label.startswith("internal"):
            for key, text in (("above_room_10c", "+10 °C"), ("current_3x", "3× current"), ("above_50c", "50 °C")):
                hour = result.signatures_h[key]
                temp_ax.axvline(hour, color="grey", lw=0.6, ls=":")
                temp_ax.text(hour, 78, text, rotation=90, fontsize=7, va="top")
    temp_ax.axhspan(65, 75, color="tab:red", alpha=0.08, label="65-75 °C (field reports)")
    temp_ax.set_ylabel("jar temperature, °C")
    temp_ax.set_ylim(20, 80)
    temp_ax.grid(alpha=0.3)
    temp_ax.legend(fontsize=7)
    current_ax.set_ylabel("float current, A")
    current_ax.set_xlabel("hours on float")
    current_ax.grid(True, which="both", alpha=0.3)
    save(fig, out, "thermal-runaway.png")


def hvac_ramp(out: Path) -> None:
    """A room warming at 2 °C/h from 24 to 38 °C, and the jar following it (docs: the 15-minute lag)."""
    bank = lab.bench(MODEL, temperature_c=24.0)
    mode = np.full(1, Mode.FLOAT, dtype=np.uint8)
    hours = np.arange(0, 12 * 60 + 1) / 60
    room = np.clip(24.0 + 2.0 * (hours - 1.0), 24.0, 38.0)
    jar = []
    for room_c in room:
        jar.append(float(bank.temperature_c[0]))
        bank.advance(60.0, mode, np.zeros(1), np.full(1, room_c))
    jar = np.array(jar)
    lag_h = np.interp(31.0, jar, hours) - np.interp(31.0, room, hours)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(hours, room, label="room (HVAC failed at 1 h)")
    ax.plot(hours, jar, label=f"jar body (lags {lag_h * 60:.0f} min at 31 °C)")
    ax.set_xlabel("hours")
    ax.set_ylabel("°C")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "hvac-ramp.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "validation")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    runtime_plot(out, "constant-current", "current_a", (1.80, 1.75), "current per block, A", "constant-current.png")
    runtime_plot(out, "constant-power", "power_w_per_cell", (1.80, 1.75), "power, W per cell", "constant-power.png")
    discharge_curves(out)
    capacity_vs_temperature(out)
    float_current(out)
    life_vs_temperature(out)
    thermal_runaway(out)
    hvac_ramp(out)


if __name__ == "__main__":
    main()
