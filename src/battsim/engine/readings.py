"""The reading: one row per battery per tick, and the buffer that collects ticks into batches.

Columns are stored narrow (float32, small integers) because a year of the full fleet is a billion
values. ``battery_key`` indexes the ``batteries`` table; recordings join it back to ``battery_id``,
``site_id`` and ``string_id``. Measured values sit beside the true state (``true_*``) so that a
model trained on the readings can be scored against ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name -> (numpy dtype, description). The order is the column order in recordings.
READING_COLUMNS: dict[str, tuple[type, str]] = {
    "timestamp_us": (np.int64, "Tick time, microseconds since the Unix epoch, UTC"),
    "battery_key": (np.uint16, "Index of the jar in the batteries table"),
    "voltage_v": (np.float32, "Measured block voltage, V (1 mV resolution)"),
    "current_a": (np.float32, "Measured current, A, + charge / − discharge (1 mA resolution)"),
    "temperature_c": (np.float32, "Measured jar (negative post) temperature, °C (0.1 °C resolution)"),
    "internal_resistance_mohm": (np.float32, "Measured ohmic resistance, mΩ (0.01 mΩ resolution)"),
    "soh_pct": (np.float32, "State of health as a monitor estimates it from resistance, %"),
    "soc_pct": (np.float32, "State of charge, %"),
    "ambient_c": (np.float32, "Battery-room air temperature, °C"),
    "mode": (np.uint8, "Rectifier mode: 0 float, 1 boost, 2 equalize, 3 discharge, 4 disconnected"),
    "true_voltage_v": (np.float32, "Ground truth: block voltage, V"),
    "true_temperature_c": (np.float32, "Ground truth: jar temperature, °C"),
    "true_soh_pct": (np.float32, "Ground truth: capacity relative to rated, %"),
    "sensor_fault": (np.uint8, "Ground truth: injected sensor fault, 0 none, 1 stuck, 2 drift, 3 spike, 4 dropout"),
    "scenario_mask": (np.uint32, "Ground truth: bit i set when scenario i of the catalogue acts on the jar"),
}


@dataclass
class ReadingBatch:
    """Consecutive ticks of readings, column by column, tick-major (all jars of tick k, then k+1)."""

    columns: dict[str, np.ndarray]
    first_tick: int
    ticks: int

    @property
    def rows(self) -> int:
        return len(self.columns["battery_key"])


class ReadingBuffer:
    """Preallocated columns filled in place tick by tick; hands out a full batch and starts anew."""

    def __init__(self, batteries: int, ticks_per_batch: int):
        self.batteries = batteries
        self.ticks_per_batch = max(1, ticks_per_batch)
        self._battery_keys = np.arange(batteries, dtype=np.uint16)
        self._allocate(first_tick=0)

    def _allocate(self, first_tick: int) -> None:
        rows = self.batteries * self.ticks_per_batch
        self.columns = {name: np.empty(rows, dtype=dtype) for name, (dtype, _) in READING_COLUMNS.items()}
        self.columns["battery_key"][:] = np.tile(self._battery_keys, self.ticks_per_batch)
        self.first_tick = first_tick
        self.ticks = 0

    def tick_view(self, name: str) -> np.ndarray:
        """The slice of column ``name`` for the tick being filled."""
        start = self.ticks * self.batteries
        return self.columns[name][start : start + self.batteries]

    def commit_tick(self) -> bool:
        """Mark the current tick filled; True when the buffer is full."""
        self.ticks += 1
        return self.ticks == self.ticks_per_batch

    def take(self) -> ReadingBatch | None:
        """The filled part as a batch (None if empty); the buffer continues with fresh arrays."""
        if self.ticks == 0:
            return None
        rows = self.ticks * self.batteries
        batch = ReadingBatch({name: column[:rows] for name, column in self.columns.items()}, self.first_tick,
                             self.ticks)
        self._allocate(first_tick=self.first_tick + self.ticks)
        return batch
