"""Validation plots of the battery physics against the published figures, for docs/physics.md.

Every simulated point comes from ``battsim.engine.lab`` (the fleet's own BatteryBank) or, for the
series-string plots, from a ``World`` (the fleet itself).

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
from battsim.engine.battery import PROFILE_NAMES, Mode  # noqa: E402
from battsim.engine.failures import fail_jars  # noqa: E402
from battsim.engine.fleet import build_fleet, get_preset  # noqa: E402
from battsim.engine.models import get_model  # noqa: E402
from battsim.engine.world import World  # noqa: E402

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


class Keep:
    """A sink that keeps every batch and event."""

    def __init__(self):
        self.batches, self.events = [], []

    def readings(self, batch):
        self.batches.append(batch)

    def event(self, event):
        self.events.append(event)


def float_spread_by_profile(hours: float = 12.0) -> dict:
    """Each jar's float voltage minus its string's mean across the full fleet after ``hours`` on float,
    mV, by profile; and a dried-out and a shorted jar's in one string."""
    world = World(build_fleet(get_preset("thailand-full"), seed=1), Keep(), seed=1, interval_s=3600)
    fail_jars(world, "dry_out", [5])
    fail_jars(world, "internal_short", [30])
    world.run_until(hours * 3600)
    world.catch_up()
    bank, terminal = world.bank, world.terminal
    string_mean = (np.add.reduceat(terminal.voltage_v, world.string_start) / world.string_jars)[bank.jar_string]
    deviation_mv = (terminal.voltage_v - string_mean) * 1e3
    healthy = np.ones(bank.size, dtype=bool)
    healthy[[5, 30]] = False
    return {"deviation_mv": deviation_mv, "profile": bank.profile, "soh_pct": bank.soh_pct, "ok": healthy,
            "dry_out_mv": deviation_mv[5], "short_mv": deviation_mv[30],
            "string_sigma_mv": np.array([deviation_mv[s:s + n][healthy[s:s + n]].std()
                                         for s, n in zip(world.string_start, world.string_jars)])}


def string_float_voltages(out: Path) -> None:
    """Histogram of jar float voltage around its string's mean, by degradation profile (thailand-full)."""
    spread = float_spread_by_profile()
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-400, 300, 71)
    for index, name in enumerate(PROFILE_NAMES):
        chosen = (spread["profile"] == index) & spread["ok"]
        values = spread["deviation_mv"][chosen]
        print(f"  {name}: {chosen.sum()} jars, mean {values.mean():+.0f} mV, sigma {values.std():.0f} mV, "
              f"SOH {spread['soh_pct'][chosen].mean():.1f} %")
        ax.hist(values, bins=bins, density=True, histtype="step", lw=1.5,
                label=f"{name} ({chosen.sum()} jars): σ {values.std():.0f} mV")
    ax.text(0.02, 0.6, f"off scale, in one string:\ndried-out jar {spread['dry_out_mv']:+.0f} mV\n"
            f"one cell shorted {spread['short_mv']:+.0f} mV", transform=ax.transAxes, fontsize=7)
    print(f"  per-string sigma: median {np.median(spread['string_sigma_mv']):.0f} mV "
          f"(range {spread['string_sigma_mv'].min():.0f}-{spread['string_sigma_mv'].max():.0f}); "
          f"dry-out {spread['dry_out_mv']:+.0f} mV, short {spread['short_mv']:+.0f} mV")
    ax.set_xlabel("jar float voltage − its string's mean, mV (12 V jars, 24 per string)")
    ax.set_ylabel("density")
    ax.set_title("thailand-full after 12 h on float", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, out, "string-float-voltages.png")


def string_series(interval_s: int):
    """Hours, string voltage and current of single-string with a 50 min outage and one to the end voltage."""
    sink = Keep()
    world = World(build_fleet(get_preset("single-string"), seed=4), sink, seed=4, interval_s=interval_s)
    for at_h, action in ((10 + 20 / 60, world.lose_input), (11 + 10 / 60, world.restore_input),
                         (30 + 7 / 60, world.lose_input), (40.0, world.restore_input)):
        world.run_until(at_h * 3600)
        action([0], "plot")
    world.run_until(48 * 3600)
    world.flush()
    stamp = np.concatenate([b.columns["timestamp_us"].reshape(b.ticks, -1)[:, 0] for b in sink.batches])
    volts = np.concatenate([b.columns["true_voltage_v"].reshape(b.ticks, -1).sum(axis=1) for b in sink.batches])
    amps = np.concatenate([b.columns["current_a"].reshape(b.ticks, -1).mean(axis=1) for b in sink.batches])
    return (stamp - world.start_us) / 3.6e9, volts, amps, sink.events


def outage_at_two_intervals(out: Path) -> None:
    """The same two outages recorded at 10 s and at 3600 s: the hourly readings sit on the 10 s curve."""
    fine, coarse = string_series(10), string_series(3600)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for (hours, volts, amps, _), style, label in ((fine, "-", "10 s"), (coarse, "o", "3600 s")):
        top.plot(hours, volts, style, ms=4, lw=1, label=label)
        bottom.plot(hours, amps, style, ms=4, lw=1, label=label)
    for event in fine[3]:
        if event.kind == "low_voltage_disconnect":
            top.axhline(event.detail["voltage_v"], color="k", ls=":", lw=1)
            top.annotate(f"disconnect {event.detail['voltage_v']:.1f} V", (31, event.detail["voltage_v"] + 3), fontsize=7)
    top.set_ylabel("string voltage, V")
    bottom.set_ylabel("string current, A")
    bottom.set_xlabel("hours")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    top.set_title("single-string: outages 10:20-11:10 and 06:07 (day 2) to the end voltage", fontsize=9)
    save(fig, out, "outage-10s-vs-3600s.png")


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
    string_float_voltages(out)
    outage_at_two_intervals(out)


if __name__ == "__main__":
    main()
