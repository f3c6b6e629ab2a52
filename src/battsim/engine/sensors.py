"""The battery monitor: turns the true state into measured values, and injects sensor faults.

What it measures, and how well (``../shared/reference/monitoring-systems.md``; σ is one standard deviation):

* block voltage: a per-jar gain error of σ 0.05 % (so ±0.1 % at 2σ, the Albér BDS accuracy), drifting by
  σ 0.05 % a year, plus 2 mV rms noise, in 1 mV steps;
* jar (negative post) temperature: a per-probe offset of σ 0.4 °C drifting by σ 0.2 °C a year plus 0.1 °C
  rms noise, in 0.1 °C steps (probes are ±0.5-1 °C); the room's air from one probe per site, offset σ
  0.5 °C (Sentinel ambient ±1 °C) plus 0.1 °C rms noise;
* ohmic resistance only by a test (:meth:`BatteryMonitor.ohmic_test`): a momentary load, per-jar contact
  error σ 1 % and 1 % rms repeatability, in 0.01 mΩ steps; the reading holds the last test's value;
* string current from one Hall sensor per string (:class:`StringSensors`): gain error σ 0.5 % of the
  reading and a zero offset of σ 0.1 % of its full scale (Sentinel: ±1 % plus the sensor's error), 0.05 % of
  full scale rms noise, in 0.01 A steps; the string voltage to 10 mV; ripple current and voltage rms ±2 %;
* state of charge as a monitor estimates it: 100 % on float, else counted from the measured string current
  against the jar's *rated* capacity (an aged jar empties sooner than its estimate says).

Communication with a module of :data:`JARS_PER_MODULE` jars drops out now and then (:meth:`BatteryMonitor.add_gap`):
its jars' measured channels are missing (NaN, NULL in recordings) for the gap. Measurement is applied to a
whole batch of ticks at once, with each site drawing from its own random streams (one per purpose) in tick
order, so the values do not depend on how ticks are grouped into batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from battsim.engine.ageing import population_soh_from_resistance_pct
from battsim.engine.battery import Mode
from battsim.engine.physics import REFERENCE_TEMPERATURE_C, RESISTANCE_TEMPERATURE_COEFF_PER_C, SECONDS_PER_YEAR
from battsim.engine.readings import ReadingBatch

VOLTAGE_NOISE_V = 0.002
VOLTAGE_GAIN_SIGMA = 0.0005
VOLTAGE_DRIFT_SIGMA_PER_YEAR = 0.0005
TEMPERATURE_NOISE_C = 0.1
TEMPERATURE_OFFSET_SIGMA_C = 0.4
TEMPERATURE_DRIFT_SIGMA_C_PER_YEAR = 0.2
ROOM_PROBE_OFFSET_SIGMA_C = 0.5
RESISTANCE_NOISE_FRACTION = 0.01
RESISTANCE_GAIN_SIGMA = 0.01
CURRENT_GAIN_SIGMA = 0.005
CURRENT_ZERO_SIGMA_FULL_SCALE = 0.001
CURRENT_NOISE_FULL_SCALE = 0.0005
RIPPLE_NOISE_FRACTION = 0.02

VOLTAGE_RESOLUTION_V = 0.001
STRING_VOLTAGE_RESOLUTION_V = 0.01
CURRENT_RESOLUTION_A = 0.01
TEMPERATURE_RESOLUTION_C = 0.1
RESISTANCE_RESOLUTION_MOHM = 0.01
RIPPLE_CURRENT_RESOLUTION_A = 0.01
RIPPLE_VOLTAGE_RESOLUTION_V = 0.001

# A Hall sensor is sized for the string's one-hour discharge: full scale is 1 C, rounded up to 50 A.
CURRENT_FULL_SCALE_C = 1.0
CURRENT_FULL_SCALE_STEP_A = 50.0
# The ohmic test's momentary load (DC-load testers draw tens of amps for a few seconds), A per Ah of C10.
OHMIC_TEST_CURRENT_C10 = 0.25
# Cellwatch and most monitors wire one module per 4 jars; a communication gap loses a whole module.
JARS_PER_MODULE = 4

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


@dataclass
class Calibration:
    """Each sensor's own error, drawn once per jar, string or room (seeded): what a real monitor's channels
    carry from the factory and gather with age. All zeros (:meth:`perfect`) measures the truth plus noise."""

    voltage_gain: np.ndarray  # per jar, fraction of the reading
    voltage_drift_per_year: np.ndarray
    temperature_offset_c: np.ndarray  # per jar
    temperature_drift_c_per_year: np.ndarray
    resistance_gain: np.ndarray  # per jar: the test's contact error
    room_offset_c: np.ndarray  # per site

    @classmethod
    def perfect(cls, jars: int, sites: int) -> Calibration:
        zeros = np.zeros(jars)
        return cls(zeros, zeros, zeros, zeros, zeros, np.zeros(sites))

    @classmethod
    def draw(cls, jar_normals: np.ndarray, site_normals: np.ndarray) -> Calibration:
        """From standard normals: (jars, 5) and (sites,) (each from its jar's or site's own stream)."""
        z = np.asarray(jar_normals, dtype=np.float64)
        return cls(VOLTAGE_GAIN_SIGMA * z[:, 0], VOLTAGE_DRIFT_SIGMA_PER_YEAR * z[:, 1],
                   TEMPERATURE_OFFSET_SIGMA_C * z[:, 2], TEMPERATURE_DRIFT_SIGMA_C_PER_YEAR * z[:, 3],
                   RESISTANCE_GAIN_SIGMA * z[:, 4], ROOM_PROBE_OFFSET_SIGMA_C * np.asarray(site_normals, dtype=np.float64))


def current_full_scale_a(rated_ah: np.ndarray) -> np.ndarray:
    """The Hall sensor fitted on a string of ``rated_ah`` (C10): 1 C rounded up to 50 A."""
    return np.ceil(CURRENT_FULL_SCALE_C * np.asarray(rated_ah) / CURRENT_FULL_SCALE_STEP_A) * CURRENT_FULL_SCALE_STEP_A


class StringSensors:
    """The channels a monitor has per string: string voltage, one Hall current sensor, ripple current and voltage."""

    def __init__(self, site_string_slices: list[slice], site_rngs: list[np.random.Generator], rated_ah: np.ndarray,
                 normals: np.ndarray):
        """``normals``: (strings, 2) standard normals of each sensor's gain and zero offset (its own stream)."""
        self.site_slices = site_string_slices
        self.site_rngs = site_rngs
        self.full_scale_a = current_full_scale_a(rated_ah).astype(np.float32)
        normals = np.asarray(normals, dtype=np.float64)
        self.current_gain = (CURRENT_GAIN_SIGMA * normals[:, 0]).astype(np.float32)
        self.current_zero_a = (CURRENT_ZERO_SIGMA_FULL_SCALE * normals[:, 1] * self.full_scale_a).astype(np.float32)

    def measure(self, columns: dict[str, np.ndarray], ticks: int) -> np.ndarray:
        """Fill the measured string columns from the true ones, in place; returns the measured current (ticks × strings)."""
        strings = len(self.full_scale_a)
        noise = np.empty((ticks, strings, 4), dtype=np.float32)
        for part, rng in zip(self.site_slices, self.site_rngs):
            noise[:, part, :] = rng.standard_normal((ticks, part.stop - part.start, 4), dtype=np.float32)
        true_current = columns["true_current_a"].reshape(ticks, strings)
        current = true_current * (1.0 + self.current_gain) + self.current_zero_a
        current += noise[:, :, 0] * (CURRENT_NOISE_FULL_SCALE * self.full_scale_a)
        measured = columns["current_a"].reshape(ticks, strings)
        quantize_into(measured, current, CURRENT_RESOLUTION_A)
        measured += 0.0  # no -0.0 (a reading rounded to zero from below): it would print as "-0.0"
        voltage = columns["true_voltage_v"].reshape(ticks, strings) + noise[:, :, 1] * (10 * VOLTAGE_NOISE_V)
        quantize_into(columns["voltage_v"].reshape(ticks, strings), voltage, STRING_VOLTAGE_RESOLUTION_V)
        # The ripple voltage arrives as the truth across the string's ohmic resistance (set by the world).
        ripple = columns["true_ripple_current_rms_a"].reshape(ticks, strings)
        ripple_v = columns["ripple_voltage_rms_v"].reshape(ticks, strings)
        ripple_v *= 1.0 + RIPPLE_NOISE_FRACTION * noise[:, :, 3]
        quantize_into(ripple_v, ripple_v.copy(), RIPPLE_VOLTAGE_RESOLUTION_V)
        measured_ripple = np.maximum(ripple * (1.0 + RIPPLE_NOISE_FRACTION * noise[:, :, 2]), 0.0)
        quantize_into(columns["ripple_current_rms_a"].reshape(ticks, strings), measured_ripple,
                      RIPPLE_CURRENT_RESOLUTION_A)
        return columns["current_a"].reshape(ticks, strings)


class BatteryMonitor:
    """Measurement of every jar, with per-jar injectable faults, ohmic tests and communication gaps.

    Without ``strings`` (tests of the jar channels alone) the batch's ``current_a`` and ``soc_pct`` are taken
    as already measured; with them, a jar's current is its string's Hall sensor reading and its state of
    charge the monitor's estimate from it.
    """

    def __init__(self, site_slices: list[slice], site_rngs: list[np.random.Generator],
                 baseline_resistance_mohm: np.ndarray, interval_s: float = 60.0, calibration: Calibration | None = None,
                 strings: StringSensors | None = None, jar_string: np.ndarray | None = None,
                 rated_ah: np.ndarray | None = None, start_us: int = 0,
                 aux_rngs: list[np.random.Generator] | None = None):
        """``aux_rngs``: per site, the streams of the room probe and of the ohmic tests (2 per site)."""
        self.site_slices = site_slices
        self.site_rngs = site_rngs
        self.baseline_resistance_mohm = baseline_resistance_mohm.astype(np.float32)
        size = len(baseline_resistance_mohm)
        self.interval_s = float(interval_s)
        self.calibration = calibration or Calibration.perfect(size, len(site_slices))
        self.strings = strings
        self.jar_string = jar_string
        self.rated_ah = None if rated_ah is None else np.asarray(rated_ah, dtype=np.float32)
        self.start_us = start_us
        self.room_rngs = [rngs[0] for rngs in aux_rngs] if aux_rngs else None
        self.ohmic_rngs = [rngs[1] for rngs in aux_rngs] if aux_rngs else None
        self.jar_site = np.concatenate([np.full(part.stop - part.start, site) for site, part in enumerate(site_slices)])
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
        # The last ohmic test's result per jar (NaN: none yet), which the readings hold between tests.
        self.held_resistance_mohm = np.full(size, np.nan, dtype=np.float32)
        # Communication gaps: (jars, from_us, until_us); the charge counted since each string left float.
        self.gaps: list[tuple[np.ndarray, int, int]] = []
        self.counted_ah = None if strings is None else np.zeros(len(strings.full_scale_a), dtype=np.float32)

    # ------------------------------------------------------------------------------ faults and gaps
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

    def add_gap(self, jars: np.ndarray, from_us: int, until_us: int) -> None:
        """No data from ``jars`` (a module) from ``from_us`` until ``until_us``: their measured channels are NaN."""
        self.gaps.append((np.asarray(jars), int(from_us), int(until_us)))

    def unreachable(self, now_us: int) -> np.ndarray:
        """Jars the monitor cannot read now (in a communication gap, or with a dropout fault)."""
        out = self.fault == SensorFault.DROPOUT
        for jars, from_us, until_us in self.gaps:
            if from_us <= now_us < until_us:
                out[jars] = True
        return out

    # ------------------------------------------------------------------------------ tests and the room
    def ohmic_test(self, jars: np.ndarray, site: int, true_resistance_mohm: np.ndarray,
                   true_temperature_c: np.ndarray, now_us: int) -> tuple[np.ndarray, np.ndarray]:
        """Measure ``jars``' ohmic resistance and temperature by a test now; the readings hold the result.
        Returns (resistance mΩ, temperature °C) as measured."""
        rng = self.ohmic_rngs[site] if self.ohmic_rngs else self.site_rngs[site]
        noise = rng.standard_normal((len(jars), 2))
        calibration = self.calibration
        resistance = true_resistance_mohm * (1.0 + calibration.resistance_gain[jars]) * (
            1.0 + RESISTANCE_NOISE_FRACTION * noise[:, 0])
        resistance = np.round(resistance / RESISTANCE_RESOLUTION_MOHM) * RESISTANCE_RESOLUTION_MOHM
        temperature = true_temperature_c + self._temperature_error_c(jars, now_us) + TEMPERATURE_NOISE_C * noise[:, 1]
        temperature = np.round(temperature / TEMPERATURE_RESOLUTION_C) * TEMPERATURE_RESOLUTION_C
        self.held_resistance_mohm[jars] = resistance
        return resistance, temperature

    def _room_probes(self, columns: dict[str, np.ndarray], by_tick: tuple[int, int]) -> None:
        """The ambient column arrives as each jar's room's true air; make it its room probe's reading (one
        probe per site: its offset plus one noise draw per tick)."""
        ticks = by_tick[0]
        noise = np.column_stack([rng.standard_normal(ticks, dtype=np.float32) for rng in self.room_rngs])
        error = (noise * np.float32(TEMPERATURE_NOISE_C) + self.calibration.room_offset_c.astype(np.float32))
        ambient = columns["ambient_c"].reshape(by_tick)
        ambient += error[:, self.jar_site]
        quantize_into(ambient, ambient.copy(), TEMPERATURE_RESOLUTION_C)

    def _temperature_error_c(self, jars, now_us):
        years = (now_us - self.start_us) / 1e6 / SECONDS_PER_YEAR
        calibration = self.calibration
        return calibration.temperature_offset_c[jars] + calibration.temperature_drift_c_per_year[jars] * years

    # ------------------------------------------------------------------------------ a batch
    def measure(self, batch: ReadingBatch) -> None:
        """Fill the measured columns of ``batch`` from its true columns, in place (the resistance column
        arrives holding the last test's results, the ambient column the room probes')."""
        columns = batch.columns
        ticks, size = batch.ticks, len(self.fault)
        by_tick = (ticks, size)
        noise = np.empty((ticks, size, 2), dtype=np.float32)
        for jars, rng in zip(self.site_slices, self.site_rngs):
            noise[:, jars, :] = rng.standard_normal((ticks, jars.stop - jars.start, 2), dtype=np.float32)
        noise = noise.reshape(ticks * size, 2)

        # Calibration: a gain (voltage) or offset (temperature) per jar, drifting linearly with time.
        years = ((columns["timestamp_us"].reshape(by_tick)[:, :1] - self.start_us) / (1e6 * SECONDS_PER_YEAR)
                 ).astype(np.float32)
        calibration = self.calibration
        # In place where possible: this runs over every reading, so each temporary array costs.
        gain = years * calibration.voltage_drift_per_year.astype(np.float32)
        gain += (1.0 + calibration.voltage_gain).astype(np.float32)
        voltage = np.multiply(columns["true_voltage_v"], gain.reshape(-1))
        voltage += noise[:, 0] * np.float32(VOLTAGE_NOISE_V)
        offset = years * calibration.temperature_drift_c_per_year.astype(np.float32)
        offset += calibration.temperature_offset_c.astype(np.float32)
        temperature = np.multiply(noise[:, 1], TEMPERATURE_NOISE_C)
        temperature += columns["true_temperature_c"]
        temperature += offset.reshape(-1)
        if self.strings is not None:
            string_current = self.strings.measure(batch.string_columns, ticks)
            columns["current_a"].reshape(by_tick)[:] = string_current[:, self.jar_string]
            self._estimate_soc(columns, batch.string_columns, string_current, by_tick)
        resistance, current = columns["internal_resistance_mohm"], columns["current_a"]

        columns["sensor_fault"].reshape(by_tick)[:] = self.fault
        if self.fault.any():
            voltage, temperature, resistance, current = self._apply_faults(
                batch, columns["sensor_fault"], voltage, temperature, resistance, current
            )

        quantize_into(columns["voltage_v"], voltage, VOLTAGE_RESOLUTION_V)
        quantize_into(columns["temperature_c"], temperature, TEMPERATURE_RESOLUTION_C)
        if resistance is not columns["internal_resistance_mohm"]:
            columns["internal_resistance_mohm"][:] = resistance
        if current is not columns["current_a"]:
            columns["current_a"][:] = current
        if self.room_rngs:
            self._room_probes(columns, by_tick)
        self._apply_gaps(columns, by_tick)
        self._estimate_soh(columns, by_tick)

    def _apply_gaps(self, columns: dict[str, np.ndarray], by_tick: tuple[int, int]) -> None:
        """The measured channels of jars in a communication gap are missing (NaN) for its ticks."""
        if not self.gaps:
            return
        timestamps = columns["timestamp_us"].reshape(by_tick)[:, 0]
        first_us, last_us = int(timestamps[0]), int(timestamps[-1])
        for jars, from_us, until_us in self.gaps:
            if until_us <= first_us or from_us > last_us:
                continue
            ticks = (timestamps >= from_us) & (timestamps < until_us)
            for name in ("voltage_v", "temperature_c", "internal_resistance_mohm", "current_a"):
                view = columns[name].reshape(by_tick)
                view[np.ix_(ticks, jars)] = np.nan
        self.gaps = [gap for gap in self.gaps if gap[2] > last_us]

    def _estimate_soc(self, columns, string_columns, string_current, by_tick) -> None:
        """The monitor's state of charge: 100 % on float; otherwise 100 % plus the charge its Hall sensor
        counted since the string left float (each reading stands for the interval before it), over the jar's
        rated capacity, within 0-100 %, to 0.1 %."""
        ticks, strings = string_current.shape
        mode = string_columns["mode"].reshape(ticks, strings)
        estimate = columns["soc_pct"].reshape(by_tick)
        counted = self.counted_ah
        if not counted.any() and (mode == Mode.FLOAT).all():
            estimate[:] = 100.0
            return
        hours = np.float32(self.interval_s / 3600.0)
        per_tick = np.empty((ticks, strings), dtype=np.float32)
        for tick in range(ticks):  # a short loop over the batch's ticks, each over every string
            counted = np.where(mode[tick] == Mode.FLOAT, np.float32(0.0),
                               np.minimum(counted + string_current[tick] * hours, np.float32(0.0)))
            per_tick[tick] = counted
        self.counted_ah = counted.astype(np.float32)
        np.multiply(per_tick[:, self.jar_string], 100.0 / self.rated_ah, out=estimate)
        estimate += 100.0
        np.clip(np.round(estimate, 1), 0.0, 100.0, out=estimate)

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
