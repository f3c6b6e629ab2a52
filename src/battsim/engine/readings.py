"""The reading: one row per battery per tick, and the buffer that collects ticks into batches.

Columns are stored narrow (float32, small integers) because a year of the full fleet is a billion
values. ``battery_key`` indexes the ``batteries`` table; recordings join it back to ``battery_id``,
``site_id`` and ``string_id`` (a replaced jar's slot carries its new jar's key from the replacement on).
Measured values sit beside the true state (``true_*``) so that a model trained on the readings can be
scored against ground truth.

A batch also carries what the monitor measured per *string* at the same ticks (:data:`STRING_COLUMNS`:
one voltage, one Hall current sensor, ripple) and the ohmic tests it ran meanwhile
(:data:`OHMIC_TEST_COLUMNS`), so a sink writes all three in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# name -> (numpy dtype, description). The order is the column order in recordings.
READING_COLUMNS: dict[str, tuple[type, str]] = {
    "timestamp_us": (np.int64, "Tick time, microseconds since the Unix epoch, UTC"),
    "battery_key": (np.uint16, "Index of the jar in the batteries table"),
    "voltage_v": (np.float32, "Measured block voltage, V (1 mV resolution)"),
    "current_a": (np.float32, "Measured current of the jar's string from its one Hall sensor, A, + charge / "
                  "− discharge (0.01 A resolution; the jars of a string are in series)"),
    "temperature_c": (np.float32, "Measured jar (negative post) temperature, °C (0.1 °C resolution)"),
    "internal_resistance_mohm": (np.float32, "Ohmic resistance measured by the last ohmic test (table ohmic_tests), "
                                 "held until the next one, mΩ (0.01 mΩ resolution)"),
    "soh_pct": (np.float32, "State of health as a monitor estimates it from resistance, %; missing until the "
                "jar's first measured reading"),
    "soc_pct": (np.float32, "State of charge as the monitor estimates it: 100 % on float, else counted from the "
                "string current against the rated capacity, %"),
    "ambient_c": (np.float32, "Battery-room air temperature from the room's own probe (one per site), °C"),
    "mode": (np.uint8, "Rectifier mode: 0 float, 1 boost, 2 equalize, 3 discharge, 4 disconnected"),
    "true_voltage_v": (np.float32, "Ground truth: block voltage, V"),
    "true_temperature_c": (np.float32, "Ground truth: jar temperature, °C"),
    "true_internal_resistance_mohm": (np.float32, "Ground truth: ohmic resistance at this tick, mΩ"),
    "true_soc_pct": (np.float32, "Ground truth: state of charge, %"),
    "true_soh_pct": (np.float32, "Ground truth: capacity relative to rated, %"),
    "sensor_fault": (np.uint8, "Ground truth: injected sensor fault, 0 none, 1 stuck, 2 drift, 3 spike, 4 dropout"),
    "scenario_mask": (np.uint32, "Ground truth: bit i set when scenario i of the catalogue acts on the jar"),
}


# The string channels, one row per string per tick (string_key indexes the recording's strings table).
STRING_COLUMNS: dict[str, tuple[type, str]] = {
    "timestamp_us": (np.int64, "Tick time, microseconds since the Unix epoch, UTC"),
    "string_key": (np.uint16, "Index of the string in the strings table"),
    "voltage_v": (np.float32, "Measured string voltage, V (10 mV resolution)"),
    "current_a": (np.float32, "Measured string current from one Hall sensor, A, + charge / − discharge "
                  "(0.01 A resolution; zero offset and gain error of the sensor, see strings.current_full_scale_a)"),
    "ripple_current_rms_a": (np.float32, "Measured AC ripple current through the string, A rms (0.01 A)"),
    "ripple_voltage_rms_v": (np.float32, "Measured AC ripple voltage across the string, V rms (1 mV)"),
    "mode": (np.uint8, "Rectifier mode: 0 float, 1 boost, 2 equalize, 3 discharge, 4 disconnected"),
    "true_voltage_v": (np.float32, "Ground truth: string voltage, V"),
    "true_current_a": (np.float32, "Ground truth: string current, A"),
    "true_ripple_current_rms_a": (np.float32, "Ground truth: ripple current, A rms"),
    "true_room_c": (np.float32, "Ground truth: the battery room's air, °C (the air beside a jar is this plus "
                    "batteries.rack_offset_c)"),
}

# One row per jar per ohmic test (the monitor's momentary-load resistance test, run on float).
OHMIC_TEST_COLUMNS: dict[str, tuple[type, str]] = {
    "timestamp_us": (np.int64, "Time of the test (a tick), microseconds since the Unix epoch, UTC"),
    "battery_key": (np.uint16, "Index of the jar in the batteries table"),
    "resistance_mohm": (np.float32, "Measured ohmic resistance, mΩ (0.01 mΩ resolution)"),
    "temperature_c": (np.float32, "Measured jar temperature during the test, °C"),
    "test_current_a": (np.float32, "The momentary load current the test drew, A"),
    "true_resistance_mohm": (np.float32, "Ground truth: ohmic resistance, mΩ"),
    "instrument": (np.uint8, "0 the monitor's scheduled test, 1 a handheld meter of an impedance survey"),
}


def empty_columns(spec: dict[str, tuple[type, str]], rows: int = 0) -> dict[str, np.ndarray]:
    return {name: np.empty(rows, dtype=dtype) for name, (dtype, _) in spec.items()}


@dataclass
class ReadingBatch:
    """Consecutive ticks of readings, column by column, tick-major (all jars of tick k, then k+1);
    with the string channels of the same ticks (tick-major too) and the ohmic tests run in them."""

    columns: dict[str, np.ndarray]
    first_tick: int
    ticks: int
    string_columns: dict[str, np.ndarray] = field(default_factory=lambda: empty_columns(STRING_COLUMNS))
    ohmic_tests: dict[str, np.ndarray] = field(default_factory=lambda: empty_columns(OHMIC_TEST_COLUMNS))

    @property
    def rows(self) -> int:
        return len(self.columns["battery_key"])

    @classmethod
    def concatenate(cls, batches: list[ReadingBatch]) -> ReadingBatch:
        """Consecutive batches as one (readings, string channels and ohmic tests alike)."""
        if len(batches) == 1:
            return batches[0]

        def joined(part: str) -> dict[str, np.ndarray]:
            return {name: np.concatenate([getattr(b, part)[name] for b in batches]) for name in getattr(batches[0], part)}

        return cls(joined("columns"), batches[0].first_tick, sum(b.ticks for b in batches), joined("string_columns"),
                   joined("ohmic_tests"))


class ReadingBuffer:
    """Preallocated columns filled in place tick by tick; hands out a full batch and starts anew."""

    def __init__(self, batteries: int, ticks_per_batch: int, strings: int = 0):
        self.batteries = batteries
        self.strings = strings
        self.ticks_per_batch = max(1, ticks_per_batch)
        self._battery_keys = np.arange(batteries, dtype=np.uint16)
        self._string_keys = np.arange(strings, dtype=np.uint16)
        self._allocate(first_tick=0)

    def set_battery_keys(self, keys: np.ndarray) -> None:
        """The key of the jar in each slot from the tick being filled on (a jar was replaced)."""
        self._battery_keys = np.asarray(keys, dtype=np.uint16).copy()
        start = self.ticks * self.batteries
        self.columns["battery_key"][start:] = np.tile(self._battery_keys, self.ticks_per_batch - self.ticks)

    def _allocate(self, first_tick: int) -> None:
        rows = self.batteries * self.ticks_per_batch
        self.columns = empty_columns(READING_COLUMNS, rows)
        self.columns["battery_key"][:] = np.tile(self._battery_keys, self.ticks_per_batch)
        self.string_columns = empty_columns(STRING_COLUMNS, self.strings * self.ticks_per_batch)
        self.string_columns["string_key"][:] = np.tile(self._string_keys, self.ticks_per_batch)
        self._ohmic_tests: list[dict[str, np.ndarray]] = []
        self.first_tick = first_tick
        self.ticks = 0

    def tick_view(self, name: str) -> np.ndarray:
        """The slice of column ``name`` for the tick being filled."""
        start = self.ticks * self.batteries
        return self.columns[name][start : start + self.batteries]

    def string_tick_view(self, name: str) -> np.ndarray:
        """The slice of string column ``name`` for the tick being filled."""
        start = self.ticks * self.strings
        return self.string_columns[name][start : start + self.strings]

    def add_ohmic_tests(self, rows: dict[str, np.ndarray]) -> None:
        """Ohmic test results (columns of :data:`OHMIC_TEST_COLUMNS`) taken at the tick being filled."""
        self._ohmic_tests.append(rows)

    def commit_tick(self) -> bool:
        """Mark the current tick filled; True when the buffer is full."""
        self.ticks += 1
        return self.ticks == self.ticks_per_batch

    def take(self) -> ReadingBatch | None:
        """The filled part as a batch (None if empty); the buffer continues with fresh arrays."""
        if self.ticks == 0:
            return None
        rows, string_rows = self.ticks * self.batteries, self.ticks * self.strings
        tests = empty_columns(OHMIC_TEST_COLUMNS)
        if self._ohmic_tests:
            tests = {name: np.concatenate([part[name] for part in self._ohmic_tests]).astype(dtype, copy=False)
                     for name, (dtype, _) in OHMIC_TEST_COLUMNS.items()}
        batch = ReadingBatch({name: column[:rows] for name, column in self.columns.items()}, self.first_tick,
                             self.ticks, {name: column[:string_rows] for name, column in self.string_columns.items()},
                             tests)
        self._allocate(first_tick=self.first_tick + self.ticks)
        return batch
