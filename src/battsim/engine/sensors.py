"""The battery monitor: turns the true state into measured values, and injects sensor faults.

Noise and resolution are those of a typical string monitor (voltage ±0.1 % with 1 mV steps,
temperature ±0.5 °C with 0.1 °C steps, ohmic resistance ±2 % with 0.01 mΩ steps, Hall-effect
current ±0.5 % ± 2 mA with 1 mA steps, fine enough to follow float current). Measurement is applied
to a whole batch of ticks at once, with
each site drawing from its own random stream in tick order, so the values do not depend on how
ticks are grouped into batches.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from battsim.engine.ageing import population_soh_from_resistance_pct
from battsim.engine.battery import Mode
from battsim.engine.physics import REFERENCE_TEMPERATURE_C, RESISTANCE_TEMPERATURE_COEFF_PER_C
from battsim.engine.readings import ReadingBatch

VOLTAGE_NOISE_V = 0.004
CURRENT_NOISE_A = 0.002
CURRENT_NOISE_FRACTION = 0.005
TEMPERATURE_NOISE_C = 0.15
RESISTANCE_NOISE_FRACTION = 0.01

VOLTAGE_RESOLUTION_V = 0.001
CURRENT_RESOLUTION_A = 0.001
TEMPERATURE_RESOLUTION_C = 0.1
RESISTANCE_RESOLUTION_MOHM = 0.01


# Monitors trend state of health over about a day of float readings (an estimate updated from
# many ohmic measurements, not a reading).
SOH_TREND_TIME_CONSTANT_S = 86_400.0


class SensorFault(IntEnum):
    NONE = 0
    STUCK = 1  # voltage and temperature frozen at their value when the fault began
    DRIFT = 2  # temperature reading drifts away from the truth at a steady rate
    SPIKE = 3  # occasional wild readings
    DROPOUT = 4  # no value (NULL in recordings)


SENSOR_FAULT_NAMES = tuple(fault.name.lower() for fault in SensorFault)


def quantize_into(out: np.ndarray, values: np.ndarray, step: float) -> None:
    """``out[:]`` = ``values`` rounded to multiples of ``step``, reusing ``values`` as scratch."""
    values /= step
    np.round(values, out=values)
    np.multiply(values, step, out=out)


class BatteryMonitor:
    """Measurement of every jar, with per-jar injectable faults."""

    def __init__(self, site_slices: list[slice], site_rngs: list[np.random.Generator],
                 baseline_resistance_mohm: np.ndarray, interval_s: float = 60.0):
        self.site_slices = site_slices
        self.site_rngs = site_rngs
        self.baseline_resistance_mohm = baseline_resistance_mohm.astype(np.float32)
        size = len(baseline_resistance_mohm)
        self.fault = np.zeros(size, dtype=np.uint8)
        self.fault_start_us = np.zeros(size, dtype=np.int64)
        self.stuck_voltage_v = np.zeros(size, dtype=np.float32)
        self.stuck_temperature_c = np.zeros(size, dtype=np.float32)
        self.drift_c_per_h = np.zeros(size, dtype=np.float32)
        self.spike_probability = np.zeros(size, dtype=np.float32)
        # The state-of-health estimate is a trend, not a reading: each float reading moves it a
        # step of interval / SOH_TREND_TIME_CONSTANT_S towards what that reading implies.
        self.soh_trend_step = np.float32(min(1.0, interval_s / SOH_TREND_TIME_CONSTANT_S))
        self.soh_trend_pct = np.full(size, np.nan, dtype=np.float32)

    def inject(self, jars: np.ndarray, fault: SensorFault, now_us: int, voltage_v: np.ndarray,
               temperature_c: np.ndarray, drift_c_per_h: float = 0.5, spike_probability: float = 0.05) -> None:
        """Start ``fault`` on ``jars``; ``voltage_v`` and ``temperature_c`` are their present true values."""
        self.fault[jars] = fault
        self.fault_start_us[jars] = now_us
        self.stuck_voltage_v[jars] = voltage_v
        self.stuck_temperature_c[jars] = temperature_c
        self.drift_c_per_h[jars] = drift_c_per_h
        self.spike_probability[jars] = spike_probability

    def clear(self, jars: np.ndarray) -> None:
        self.fault[jars] = SensorFault.NONE

    def measure(self, batch: ReadingBatch) -> None:
        """Fill the measured columns of ``batch`` from its true columns, in place."""
        columns = batch.columns
        ticks, size = batch.ticks, len(self.fault)
        noise = np.empty((ticks, size, 4), dtype=np.float32)
        for jars, rng in zip(self.site_slices, self.site_rngs):
            noise[:, jars, :] = rng.standard_normal((ticks, jars.stop - jars.start, 4), dtype=np.float32)
        noise = noise.reshape(ticks * size, 4)

        # In place where possible: this runs over every reading, so each temporary array costs.
        voltage = np.multiply(noise[:, 0], VOLTAGE_NOISE_V)
        voltage += columns["true_voltage_v"]
        temperature = np.multiply(noise[:, 1], TEMPERATURE_NOISE_C)
        temperature += columns["true_temperature_c"]
        resistance = np.multiply(noise[:, 2], RESISTANCE_NOISE_FRACTION)
        resistance += 1.0
        resistance *= columns["internal_resistance_mohm"]
        true_current = columns["current_a"]
        current = np.abs(true_current)
        current *= CURRENT_NOISE_FRACTION
        current += CURRENT_NOISE_A
        current *= noise[:, 3]
        current += true_current

        by_tick = (ticks, size)
        columns["sensor_fault"].reshape(by_tick)[:] = self.fault
        if self.fault.any():
            voltage, temperature, resistance, current = self._apply_faults(
                batch, columns["sensor_fault"], voltage, temperature, resistance, current
            )

        quantize_into(columns["voltage_v"], voltage, VOLTAGE_RESOLUTION_V)
        quantize_into(columns["temperature_c"], temperature, TEMPERATURE_RESOLUTION_C)
        quantize_into(columns["internal_resistance_mohm"], resistance, RESISTANCE_RESOLUTION_MOHM)
        quantize_into(columns["current_a"], current, CURRENT_RESOLUTION_A)
        self._estimate_soh(columns, by_tick)

    def _estimate_soh(self, columns: dict[str, np.ndarray], by_tick: tuple[int, int]) -> None:
        """State of health as a monitor estimates it: from the rise of the measured ohmic resistance
        over its baseline with the *population's* relation (``ageing.population_soh_from_resistance_pct``,
        100 - (R25/R0 - 1) / 0.45 * 20), where R25 is the reading corrected to 25 °C with the measured
        temperature; trended over about a day of float readings (what a monitor does, so one noisy
        reading or a discharge does not move it), to 0.1 %. Each jar's own resistance coupling and
        noise (engine/ageing.py) is what the monitor cannot know, so the estimate differs per jar."""
        temperature_factor = np.maximum(
            1.0 + RESISTANCE_TEMPERATURE_COEFF_PER_C * (columns["temperature_c"] - REFERENCE_TEMPERATURE_C), 0.5
        ).reshape(by_tick)
        ratio = columns["internal_resistance_mohm"].reshape(by_tick) / temperature_factor
        ratio /= self.baseline_resistance_mohm
        implied = population_soh_from_resistance_pct(ratio).astype(np.float32, copy=False)
        missing = np.isnan(implied)
        # Each tick moves the trend by (implied - trend) × its gate: the trend step on a usable (float,
        # measured) reading, else 0 with the missing reading taken as 0 (so it adds an exact zero, not NaN).
        gate = np.where((columns["mode"].reshape(by_tick) == Mode.FLOAT) & ~missing, self.soh_trend_step,
                        np.float32(0.0))
        implied[missing] = 0.0
        estimate = columns["soh_pct"].reshape(by_tick)
        trend = self.soh_trend_pct
        # A jar's trend starts at its first measured reading; once every jar has one it never goes back to NaN.
        starting = bool(np.isnan(trend).any())
        moved = np.empty_like(trend)
        for tick in range(by_tick[0]):  # a short loop over the batch's ticks, each over every jar
            now = implied[tick]
            if starting:
                first = np.isnan(trend) & ~missing[tick]
                trend[first] = now[first]
                starting = bool(np.isnan(trend).any())
            np.subtract(now, trend, out=moved)
            moved *= gate[tick]
            trend += moved
            estimate[tick] = trend
        np.round(estimate, 1, out=estimate)
        np.clip(estimate, 0.0, 100.0, out=estimate)

    def _apply_faults(self, batch, fault, voltage, temperature, resistance, current):
        ticks = batch.ticks
        stuck = fault == SensorFault.STUCK
        voltage = np.where(stuck, np.tile(self.stuck_voltage_v, ticks), voltage)
        temperature = np.where(stuck, np.tile(self.stuck_temperature_c, ticks), temperature)

        drifting = fault == SensorFault.DRIFT
        hours = (batch.columns["timestamp_us"] - np.tile(self.fault_start_us, ticks)) / 3.6e9
        temperature = np.where(drifting, temperature + np.tile(self.drift_c_per_h, ticks) * hours, temperature)

        spiking = fault == SensorFault.SPIKE
        if spiking.any():
            draws = np.empty((ticks, len(self.fault), 2), dtype=np.float32)
            for jars, rng in zip(self.site_slices, self.site_rngs):
                draws[:, jars, :] = rng.random((ticks, jars.stop - jars.start, 2), dtype=np.float32)
            draws = draws.reshape(-1, 2)
            spike = spiking & (draws[:, 0] < np.tile(self.spike_probability, ticks))
            temperature = np.where(spike, temperature + 40.0 * (draws[:, 1] - 0.3), temperature)
            voltage = np.where(spike, voltage * (0.5 + draws[:, 1]), voltage)

        dropped = fault == SensorFault.DROPOUT
        nothing = np.float32(np.nan)
        return (np.where(dropped, nothing, voltage), np.where(dropped, nothing, temperature),
                np.where(dropped, nothing, resistance), np.where(dropped, nothing, current))
