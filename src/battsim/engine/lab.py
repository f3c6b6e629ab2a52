"""Single-battery experiments on the bench: discharge, float, life.

Each experiment builds a :class:`~battsim.engine.battery.BatteryBank` of one jar (or a few jars side
by side, one per condition) and drives it through :meth:`BatteryBank.advance`, the code the fleet
runs every tick; nothing here computes a voltage, a current or an ageing rate itself. This is what
``battsim lab`` prints, what the accuracy tests check against the datasheets, and what
``tools/fit_discharge.py`` fits the model's constants with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from battsim.engine import physics
from battsim.engine.battery import PROFILE_NAMES, BatteryBank, Mode
from battsim.engine.failures import FAILURE_NAMES, Failure, apply_failure
from battsim.engine.models import BatteryModel

# Steps a discharge is cut into (per jar, from a Peukert estimate of its runtime): enough that the
# runtime converges to well under 1 % and the curve is smooth.
DISCHARGE_STEPS = 1500
MAX_DISCHARGE_S = 200 * 3600.0
# Points in the reported voltage curve.
CURVE_POINTS = 200
# Float: time to settle the jar's temperature (many thermal time constants) and the step.
FLOAT_SETTLE_S = 2 * 86_400.0
FLOAT_STEP_S = 60.0
# Life: one step a day; ageing is integrated exactly over constant conditions, so the step only
# sets the resolution of the answer.
LIFE_STEP_S = 86_400.0
MAX_LIFE_YEARS = 60.0


def bench(model: BatteryModel, jars: int = 1, temperature_c: float = 25.0, soh_pct: float = 100.0,
          profile: str = "healthy") -> BatteryBank:
    """A bank of ``jars`` identical, new-from-the-factory (no spread), full jars at ``temperature_c``."""
    if profile not in PROFILE_NAMES:
        raise ValueError(f"profile must be one of {', '.join(PROFILE_NAMES)}, not {profile!r}")
    return BatteryBank(
        models=[model],
        model_index=np.zeros(jars, dtype=np.int32),
        profile=np.full(jars, PROFILE_NAMES.index(profile), dtype=np.int8),
        capacity_spread=np.ones(jars),
        resistance_spread=np.ones(jars),
        initial_soh_pct=np.full(jars, float(soh_pct)),
        initial_temperature_c=np.full(jars, float(temperature_c)),
    )


# ------------------------------------------------------------------------------------ discharge
@dataclass
class DischargeRuns:
    """Several discharges run side by side: runtimes to each end voltage, and every jar's curve."""

    end_v_per_cell: list[float]
    runtime_s: np.ndarray  # [end voltage, jar]; NaN if the end voltage was never reached
    delivered_ah: np.ndarray  # [end voltage, jar]
    time_s: np.ndarray  # [step, jar]
    voltage_v: np.ndarray  # [step, jar]
    current_a: np.ndarray  # [step, jar]
    temperature_c: np.ndarray  # [step, jar]


def _estimated_runtime_s(model: BatteryModel, current_a: np.ndarray) -> np.ndarray:
    """A Peukert guess (exponent 1.3 around C10) used only to choose each jar's step length."""
    c10_current = model.capacity_ah_c10 / 10.0
    return 36_000.0 * np.power(c10_current / np.maximum(current_a, 1e-6), 1.3)


def discharge_many(model: BatteryModel, *, current_a=None, power_w_per_cell=None, temperature_c: float = 25.0,
                   end_v_per_cell=(1.75,), soh_pct: float = 100.0, profile: str = "healthy",
                   steps: int = DISCHARGE_STEPS) -> DischargeRuns:
    """Discharge one jar per given current (A) or power (W per cell) from full, at a constant room
    temperature, until every jar is below the lowest end voltage (V/cell). ``steps`` sets each
    jar's step length from its estimated runtime (fitting uses fewer)."""
    if (current_a is None) == (power_w_per_cell is None):
        raise ValueError("give either current_a or power_w_per_cell")
    loads = np.atleast_1d(np.asarray(current_a if current_a is not None else power_w_per_cell, dtype=np.float64))
    if not (loads > 0).all():
        raise ValueError("the load must be positive")
    constant_power = power_w_per_cell is not None
    ends = sorted((float(v) for v in np.atleast_1d(end_v_per_cell)), reverse=True)
    jars = len(loads)
    bank = bench(model, jars, temperature_c, soh_pct, profile)
    cells = bank.cells
    mode = np.full(jars, Mode.DISCHARGE, dtype=np.uint8)
    room_c = np.full(jars, float(temperature_c))
    # Constant power: the circuit solves the current that, at the voltage it causes, draws the power.
    load = {"load_w": loads * cells} if constant_power else {"discharge_current_a": loads}

    terminal = bank.solve(mode, room_c, **load)
    current, voltage = -terminal.current_a, terminal.voltage_v
    dt_s = np.clip(_estimated_runtime_s(model, current) / steps, 0.1, 60.0)
    cutoff_v = np.array(ends)[:, None] * cells[None, :]
    runtime = np.full((len(ends), jars), np.nan)
    delivered = np.full((len(ends), jars), np.nan)
    times, voltages, currents, temperatures = [np.zeros(jars)], [voltage], [current], [bank.temperature_c.copy()]
    elapsed = np.zeros(jars)
    charge_ah = np.zeros(jars)
    running = np.ones(jars, dtype=bool)
    while running.any():
        step_s = np.where(running, dt_s, 0.0)
        bank.step(step_s, terminal, room_c)
        elapsed = elapsed + step_s
        charge_ah = charge_ah + current * step_s / physics.SECONDS_PER_HOUR * running
        previous_v = voltage
        terminal = bank.solve(np.where(running, mode, Mode.DISCONNECTED), room_c, **load)
        current = np.where(running, -terminal.current_a, current)
        voltage = np.where(running, terminal.voltage_v, previous_v)
        # The first step below each end voltage: interpolate the crossing inside the step.
        crossed = running & (voltage < cutoff_v) & np.isnan(runtime)
        if crossed.any():
            fraction = np.clip((previous_v - cutoff_v) / np.maximum(previous_v - voltage, 1e-12), 0.0, 1.0)
            at_s = elapsed - step_s + fraction * step_s
            runtime = np.where(crossed, at_s, runtime)
            delivered = np.where(crossed, charge_ah - current * (1.0 - fraction) * step_s / 3600.0, delivered)
        running = np.isnan(runtime[-1]) & (elapsed < MAX_DISCHARGE_S)
        times.append(elapsed.copy())
        voltages.append(voltage)
        currents.append(current)
        temperatures.append(bank.temperature_c.copy())
    return DischargeRuns(ends, runtime, delivered, np.array(times), np.array(voltages), np.array(currents),
                         np.array(temperatures))


@dataclass
class Discharge:
    runtime_s: float | None
    delivered_ah: float | None
    end_v_per_cell: float
    average_current_a: float | None
    final_temperature_c: float
    curve: list[list[float]] = field(default_factory=list)  # [[seconds, block volts], ...]

    def as_dict(self) -> dict:
        return {
            "runtime_s": self.runtime_s,
            "runtime_min": None if self.runtime_s is None else round(self.runtime_s / 60.0, 2),
            "delivered_ah": self.delivered_ah,
            "end_voltage_v_per_cell": self.end_v_per_cell,
            "average_current_a": self.average_current_a,
            "final_temperature_c": self.final_temperature_c,
            "curve": self.curve,
        }


def discharge(model: BatteryModel, *, current_a: float | None = None, power_w_per_cell: float | None = None,
              temperature_c: float = 25.0, end_v_per_cell: float | None = None, soh_pct: float = 100.0) -> Discharge:
    """One discharge from full at a constant current or power; the curve is resampled to about 200 points."""
    end = model.end_voltage_v_per_cell if end_v_per_cell is None else end_v_per_cell
    runs = discharge_many(model, current_a=current_a, power_w_per_cell=power_w_per_cell,
                          temperature_c=temperature_c, end_v_per_cell=(end,), soh_pct=soh_pct)
    runtime = float(runs.runtime_s[0, 0])
    times, volts = runs.time_s[:, 0], runs.voltage_v[:, 0]
    span = runtime if np.isfinite(runtime) else float(times[-1])
    sample_s = np.linspace(0.0, span, CURVE_POINTS + 1)
    curve = [[round(float(t), 1), round(float(v), 4)] for t, v in zip(sample_s, np.interp(sample_s, times, volts))]
    if not np.isfinite(runtime):
        return Discharge(None, None, end, None, float(runs.temperature_c[-1, 0]), curve)
    delivered = float(runs.delivered_ah[0, 0])
    final_c = float(np.interp(runtime, times, runs.temperature_c[:, 0]))
    # A load the block cannot carry above the end voltage even when full has a runtime of 0.
    average_a = delivered * 3600.0 / runtime if runtime > 0 else float(runs.current_a[0, 0])
    return Discharge(round(runtime, 1), round(delivered, 3), end, round(average_a, 3), round(final_c, 2), curve)


# ---------------------------------------------------------------------------------------- float
@dataclass
class FloatState:
    float_current_a: float
    float_current_ma_per_ah: float
    battery_temperature_c: float
    voltage_v_per_cell: float  # per live cell
    room_temperature_c: float
    thermal_runaway: bool  # held at the charger's current limit instead of a thermal balance
    # Hours from the start until each runaway signature first showed (None: never): the jar
    # 10 °C above the room, float current 3 × its value at the start, the jar above 50 °C.
    signatures_h: dict[str, float | None]
    trace: list[list[float]]  # hourly [hours, battery °C, current A, block V]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def float_charge(model: BatteryModel, temperature_c: float = 25.0, voltage_v_per_cell: float | None = None,
                 soh_pct: float = 100.0, failures: tuple[str, ...] = (), charge_cutoff_c: float | None = None,
                 hours: float = FLOAT_SETTLE_S / 3600.0) -> FloatState:
    """Hold a full jar on float in a room at ``temperature_c`` for ``hours`` and report where it settles.

    Without ``voltage_v_per_cell`` the charger applies the model's temperature-compensated float
    voltage; with it, that fixed voltage. ``failures`` (names from ``failures.FAILURE_NAMES``) are
    applied at the start, the jar being alone on its charger; ``charge_cutoff_c`` is the charger's
    thermal protection. Ageing is switched off so that only the float is measured.
    """
    bank = bench(model, 1, temperature_c, soh_pct)
    for name in failures:
        if name not in FAILURE_NAMES:
            raise ValueError(f"failure must be one of {', '.join(FAILURE_NAMES)}, not {name!r}")
        apply_failure(bank, Failure(FAILURE_NAMES.index(name)), np.zeros(1, dtype=int))
    bank.fade_multiplier[:] = 0.0
    if charge_cutoff_c is not None:
        bank.charge_cutoff_c[:] = charge_cutoff_c
    mode = np.full(1, Mode.FLOAT, dtype=np.uint8)
    room_c = np.full(1, float(temperature_c))
    fixed_v = None if voltage_v_per_cell is None else np.full(1, float(voltage_v_per_cell))
    steps = int(np.ceil(hours * 3600.0 / FLOAT_STEP_S))
    steps_per_hour = int(round(3600.0 / FLOAT_STEP_S))
    signatures: dict[str, float | None] = {"above_room_10c": None, "current_3x": None, "above_50c": None}
    trace, onset_a = [], None
    for step in range(1, steps + 1):
        terminal = bank.advance(FLOAT_STEP_S, mode, np.zeros(1), room_c, fixed_v)
        current, jar_c = float(terminal.current_a[0]), float(bank.temperature_c[0])
        onset_a = current if onset_a is None else onset_a
        hour = step * FLOAT_STEP_S / 3600.0
        for key, showing in (("above_room_10c", jar_c - temperature_c > 10.0), ("current_3x", current > 3 * onset_a),
                             ("above_50c", jar_c > 50.0)):
            if showing and signatures[key] is None:
                signatures[key] = round(hour, 3)
        if step % steps_per_hour == 0:
            trace.append([round(hour, 2), round(jar_c, 3), round(current, 5), round(float(terminal.voltage_v[0]), 4)])
    return FloatState(
        float_current_a=round(current, 6),
        float_current_ma_per_ah=round(current / model.capacity_ah_c10 * 1e3, 4),
        battery_temperature_c=round(jar_c, 3),
        voltage_v_per_cell=round(float(terminal.voltage_v[0] / max(bank.live_cells[0], 1.0)), 4),
        room_temperature_c=float(temperature_c),
        thermal_runaway=bool(current >= 0.999 * bank.current_limit_a[0]),
        signatures_h=signatures,
        trace=trace,
    )


# ----------------------------------------------------------------------------------------- life
@dataclass
class Life:
    years_to_eol: float | None
    temperature_c: float
    profile: str
    resistance_at_eol_x: float | None  # ohmic resistance at end of life / when new (full, 25 °C)
    soh_by_year: list[list[float]]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def life(model: BatteryModel, temperature_c: float, profile: str = "healthy", step_s: float = LIFE_STEP_S,
         max_years: float = MAX_LIFE_YEARS) -> Life:
    """Years on float in a room at a constant temperature until the state of health falls below 80 %."""
    new_resistance = float(bench(model, 1, 25.0, 100.0, profile)._resistance_mohm(np.ones(1))[0])
    bank = bench(model, 1, temperature_c, 100.0, profile)
    mode = np.full(1, Mode.FLOAT, dtype=np.uint8)
    room_c = np.full(1, float(temperature_c))
    elapsed_s, previous_soh = 0.0, 100.0
    soh_by_year = [[0.0, 100.0]]
    steps_per_year = max(1, int(round(physics.SECONDS_PER_YEAR / step_s)))
    step = 0
    while elapsed_s < max_years * physics.SECONDS_PER_YEAR:
        bank.advance(step_s, mode, np.zeros(1), room_c)
        elapsed_s += step_s
        step += 1
        soh = float(bank.soh_pct[0])
        if step % steps_per_year == 0:
            soh_by_year.append([round(elapsed_s / physics.SECONDS_PER_YEAR, 3), round(soh, 3)])
        if soh < physics.END_OF_LIFE_SOH_PCT:
            fraction = (previous_soh - physics.END_OF_LIFE_SOH_PCT) / (previous_soh - soh)
            years = (elapsed_s - step_s * (1.0 - fraction)) / physics.SECONDS_PER_YEAR
            # Resistance at end of life measured as a monitor would: full jar, 25 °C.
            bank.temperature_c[:] = 25.0
            bank.soh_pct[:] = physics.END_OF_LIFE_SOH_PCT
            eol_resistance = float(bank._resistance_mohm(np.ones(1))[0])
            return Life(round(years, 3), float(temperature_c), profile, round(eol_resistance / new_resistance, 3),
                        soh_by_year)
        previous_soh = soh
    return Life(None, float(temperature_c), profile, None, soh_by_year)
