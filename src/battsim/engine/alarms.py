"""Alarm rules over measured readings, with raise and clear state, evaluated for every jar at once.

The rules are the ones a battery-monitoring system applies to what its sensors report (so they see
noise, quantisation and sensor faults, as a real one does). Each rule is a comparison over the
tick's arrays; an alarm is raised when its condition starts to hold and cleared once the reading is
back past a deadband, so a value hovering at a threshold does not chatter. Only the few jars whose
state changed are turned into :class:`AlarmChange` objects.

Thresholds (vrla-facts.md): the site operators' "above 35 °C for 5 minutes", "below 12.0 V per jar
while on float" and "a reading outside 10-50 °C is a sensor fault"; "cell more than 10 °C above
ambient: possible thermal runaway" (C&D, Alpha); "+20 % resistance over the commissioning baseline
calls for a capacity test" (IEEE 1188 as commonly quoted); end of life below 80 % state of health.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from battsim.engine.battery import Mode
from battsim.engine.fleet import Fleet
from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event


class AlarmThresholds(BaseModel):
    """The numbers behind the rules; the defaults are the ones quoted in the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    high_temperature_c: float = Field(default=35.0, description="Jar temperature that raises after the delay, °C.")
    high_temperature_delay_s: float = Field(default=300.0, ge=0, description="How long it must last, s.")
    low_float_v_per_cell: float = Field(default=2.0, description="12.0 V for a 6-cell jar, while on float.")
    sensor_min_c: float = Field(default=10.0, description="A temperature reading below this is a sensor fault, °C.")
    sensor_max_c: float = Field(default=50.0, description="A temperature reading above this is a sensor fault, °C.")
    above_ambient_c: float = Field(default=10.0, description="Jar this far above the room: possible runaway, K.")
    resistance_rise_fraction: float = Field(default=0.20, description="Ohmic resistance over its baseline.")
    high_resistance_delay_s: float = Field(
        default=3600.0, ge=0, description="How long the rise must hold on float before it raises, s.")
    low_soh_pct: float = Field(default=80.0, description="State of health at end of life, %.")
    # Deadbands: how far back a reading must come before an alarm clears. Each is a few times the
    # monitor's noise on that quantity (sensors.py), so noise alone does not clear and re-raise.
    temperature_deadband_c: float = Field(default=1.0, ge=0)
    voltage_deadband_v_per_cell: float = Field(default=0.02, ge=0)
    resistance_deadband_fraction: float = Field(default=0.03, ge=0)
    soh_deadband_pct: float = Field(default=1.0, ge=0)


@dataclass(frozen=True)
class AlarmRule:
    name: str
    severity: str  # warning | critical
    description: str
    unit: str
    per_string: bool = False  # judged once per string (its first jar stands for it), not per jar


RULES: tuple[AlarmRule, ...] = (
    AlarmRule("high_temperature", "warning", "Jar above 35 °C for 5 minutes", "°C"),
    AlarmRule("low_float_voltage", "critical", "Jar below 12.0 V while on float", "V"),
    AlarmRule("sensor_fault", "warning", "Temperature reading outside 10-50 °C", "°C"),
    AlarmRule("above_ambient", "critical", "Jar more than 10 °C above the room (possible thermal runaway)", "K"),
    AlarmRule("high_resistance", "warning", "Ohmic resistance 20 % over its baseline for an hour on float", "mΩ"),
    AlarmRule("low_soh", "warning", "State of health below 80 %", "%"),
    AlarmRule("on_battery", "critical", "String on battery: rectifier input lost, discharging or disconnected", "V",
              per_string=True),
)
RULE_INDEX = {rule.name: index for index, rule in enumerate(RULES)}


@dataclass(frozen=True)
class AlarmChange:
    """One alarm raised or cleared on one jar (or, for a per-string rule, the string of that jar) at one tick."""

    timestamp_us: int
    rule: AlarmRule
    jar: int
    raised: bool
    value: float | None  # the reading that decided it (None for a missing reading)
    threshold: float | None  # None for a state rule (on_battery)

    @property
    def state(self) -> str:
        return "raised" if self.raised else "cleared"

    def detail(self) -> dict:
        return {"rule": self.rule.name, "severity": self.rule.severity, "state": self.state, "value": self.value,
                "threshold": self.threshold, "unit": self.rule.unit, "message": self.rule.description}

    def event(self, fleet: Fleet) -> Event:
        """The ``alarm_raised`` / ``alarm_cleared`` event of a recording's ``events`` table."""
        jar = self.jar
        return Event(self.timestamp_us, f"alarm_{self.state}", fleet.site_ids[fleet.battery_site[jar]],
                     fleet.string_ids[fleet.battery_string[jar]],
                     None if self.rule.per_string else fleet.battery_ids[jar], self.detail())


class AlarmMonitor:
    """Raise/clear state of every rule on every jar, advanced one tick of readings at a time."""

    def __init__(self, baseline_resistance_mohm: np.ndarray, cells: np.ndarray,
                 thresholds: AlarmThresholds = AlarmThresholds(), jar_string: np.ndarray | None = None):
        """``jar_string``: each jar's string (default: each jar alone), for the per-string rules."""
        self.thresholds = thresholds
        self.baseline_resistance_mohm = np.asarray(baseline_resistance_mohm, dtype=np.float64)
        self.low_float_v = thresholds.low_float_v_per_cell * np.asarray(cells, dtype=np.float64)
        size = len(self.baseline_resistance_mohm)
        jar_string = np.arange(size) if jar_string is None else np.asarray(jar_string)
        self.string_start = np.flatnonzero(np.diff(jar_string, prepend=-1))
        self.string_head = np.zeros(size, dtype=bool)  # the jar that stands for its string
        self.string_head[self.string_start] = True
        self.active = np.zeros((len(RULES), size), dtype=bool)
        # Since when each jar has been above the high-temperature / resistance threshold (-1: it is not).
        self.hot_since_us = np.full(size, -1, dtype=np.int64)
        self.worn_since_us = np.full(size, -1, dtype=np.int64)

    @classmethod
    def for_fleet(cls, fleet: Fleet, thresholds: AlarmThresholds = AlarmThresholds()) -> AlarmMonitor:
        """Rules over a fleet's jars, against each jar's commissioning resistance (model × spread)."""
        models = fleet.models
        baseline = np.array([models[m].internal_resistance_mohm for m in fleet.battery_model]) * fleet.resistance_spread
        cells = np.array([models[m].cells for m in fleet.battery_model])
        return cls(baseline, cells, thresholds, jar_string=fleet.battery_string)

    def evaluate_batch(self, batch: ReadingBatch) -> list[AlarmChange]:
        """Evaluate every tick of a batch in order: the same result as one :meth:`evaluate` per tick."""
        columns, size = batch.columns, len(self.baseline_resistance_mohm)
        by_tick = (batch.ticks, size)
        return self._advance(
            columns["timestamp_us"].reshape(by_tick)[:, 0], columns["voltage_v"].reshape(by_tick),
            columns["temperature_c"].reshape(by_tick), columns["internal_resistance_mohm"].reshape(by_tick),
            columns["soh_pct"].reshape(by_tick), columns["ambient_c"].reshape(by_tick), columns["mode"].reshape(by_tick),
        )

    def evaluate(self, timestamp_us: int, voltage_v: np.ndarray, temperature_c: np.ndarray,
                 resistance_mohm: np.ndarray, soh_pct: np.ndarray, ambient_c: np.ndarray,
                 mode: np.ndarray) -> list[AlarmChange]:
        """Advance the alarm state by one tick of measured readings; return what was raised or cleared.

        A missing reading (NaN, sensor dropout) leaves the alarms that depend on it as they were.
        """
        return self._advance(np.array([timestamp_us], dtype=np.int64), *(
            np.asarray(column)[None, :] for column in (voltage_v, temperature_c, resistance_mohm, soh_pct, ambient_c,
                                                        mode)))

    def _advance(self, timestamp_us, voltage_v, temperature_c, resistance_mohm, soh_pct, ambient_c, mode):
        """Every rule's raise and clear conditions for all ticks × jars at once, then the short walk
        over ticks that the raise/clear state needs (a few operations per tick, not per rule)."""
        t = self.thresholds
        voltage_v, temperature_c = voltage_v.astype(np.float64), temperature_c.astype(np.float64)
        resistance_mohm = resistance_mohm.astype(np.float64)
        rise = resistance_mohm / self.baseline_resistance_mohm - 1.0
        soh_pct = soh_pct.astype(np.float64)
        above_room_c = temperature_c - ambient_c
        on_float = mode == Mode.FLOAT
        # On battery is a state of the string, judged once on its first jar; its value is the string's voltage
        # (the sum of what its jars report, so a jar missing from the scan does not hide it).
        on_battery = ((mode == Mode.DISCHARGE) | (mode == Mode.DISCONNECTED)) & self.string_head
        string_voltage_v = np.zeros_like(voltage_v)
        string_voltage_v[:, self.string_start] = np.add.reduceat(np.nan_to_num(voltage_v), self.string_start, axis=1)
        hot_long_enough, self.hot_since_us = self._held_for(
            temperature_c > t.high_temperature_c, self.hot_since_us, timestamp_us, t.high_temperature_delay_s)
        # One noisy reading over the line is not a worn jar: the rise must hold on float for a while.
        worn_long_enough, self.worn_since_us = self._held_for(
            on_float & (rise > t.resistance_rise_fraction), self.worn_since_us, timestamp_us,
            t.high_resistance_delay_s)

        deadband_v = t.voltage_deadband_v_per_cell * self.low_float_v / t.low_float_v_per_cell
        # (value, raise condition, clear condition, threshold) per rule, in RULES order.
        checks = (
            (temperature_c, hot_long_enough, temperature_c < t.high_temperature_c - t.temperature_deadband_c,
             t.high_temperature_c),
            (voltage_v, on_float & (voltage_v < self.low_float_v),
             ~on_float | (voltage_v >= self.low_float_v + deadband_v), self.low_float_v),
            (temperature_c, (temperature_c < t.sensor_min_c) | (temperature_c > t.sensor_max_c),
             (temperature_c >= t.sensor_min_c + t.temperature_deadband_c / 2)
             & (temperature_c <= t.sensor_max_c - t.temperature_deadband_c / 2), None),
            (above_room_c, above_room_c > t.above_ambient_c,
             above_room_c < t.above_ambient_c - t.temperature_deadband_c, t.above_ambient_c),
            # Monitors judge ohmic resistance on float: it rises during any discharge as the plates sulphate.
            (resistance_mohm, worn_long_enough,
             on_float & (rise < t.resistance_rise_fraction - t.resistance_deadband_fraction),
             self.baseline_resistance_mohm * (1.0 + t.resistance_rise_fraction)),
            (soh_pct, soh_pct < t.low_soh_pct, soh_pct >= t.low_soh_pct + t.soh_deadband_pct, t.low_soh_pct),
            (string_voltage_v, on_battery, ~on_battery, None),
        )
        # An alarm can change in this batch only on a jar where, from its state at the start of the
        # batch, some tick would clear it (raised) or raise it (not raised): elsewhere the state never
        # moves, so the walk over ticks runs over those few jars only (same result, a fraction of the work).
        started = self.active
        moving = np.zeros(len(self.baseline_resistance_mohm), dtype=bool)
        for index, (value, raise_now, clear_now, _) in enumerate(checks):
            moving |= (np.where(started[index], clear_now, raise_now) & ~np.isnan(value)).any(axis=0)
        jars = np.flatnonzero(moving)
        if not jars.size:
            return []
        # Arrays of shape (ticks, rules, those jars).
        raise_now = np.stack([check[1][:, jars] for check in checks], axis=1)
        clear_now = np.stack([check[2][:, jars] for check in checks], axis=1)
        known = ~np.isnan(np.stack([check[0][:, jars] for check in checks], axis=1))

        changes = []
        active = started[:, jars]
        for tick in range(len(timestamp_us)):
            was = active
            active = np.where(known[tick], np.where(was, ~clear_now[tick], raise_now[tick]), was)
            changed = active != was
            if changed.any():
                for index, column in zip(*np.nonzero(changed)):
                    value, threshold = checks[index][0], checks[index][3]
                    changes.append(self._change(int(timestamp_us[tick]), int(index), int(jars[column]),
                                                bool(active[index, column]), value[tick], threshold, temperature_c[tick]))
        self.active = started.copy()
        self.active[:, jars] = active
        return changes

    def _held_for(self, condition: np.ndarray, since_us: np.ndarray, timestamp_us: np.ndarray,
                  delay_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Whether ``condition`` (ticks × jars) has held for ``delay_s``, per tick, and the new
        "since" state. The start of each spell is the latest tick at which the condition turned
        true (a running maximum over ticks), carried over from the previous batch by ``since_us``
        (-1 where it did not hold)."""
        # Only the jars where the condition holds at some tick have spells (elsewhere: not held, -1).
        held = np.zeros_like(condition)
        last_since_us = np.full_like(since_us, -1)
        jars = np.flatnonzero(condition.any(axis=0))
        if not jars.size:
            return held, last_since_us
        condition = condition[:, jars]
        held_before = np.vstack([since_us[jars] >= 0, condition[:-1]])
        spell_starts = np.where(condition & ~held_before, timestamp_us[:, None], -1)
        spell_starts[0] = np.where(condition[0] & held_before[0], since_us[jars], spell_starts[0])
        spell_since_us = np.where(condition, np.maximum.accumulate(spell_starts, axis=0), -1)
        held[:, jars] = condition & (timestamp_us[:, None] - spell_since_us >= delay_s * 1e6)
        last_since_us[jars] = spell_since_us[-1]
        return held, last_since_us

    def _change(self, timestamp_us, index, jar, raised, value, threshold, temperature_c) -> AlarmChange:
        rule, t = RULES[index], self.thresholds
        if rule.name == "sensor_fault":
            threshold = t.sensor_min_c if temperature_c[jar] < (t.sensor_min_c + t.sensor_max_c) / 2 else t.sensor_max_c
        elif np.ndim(threshold):
            threshold = threshold[jar]
        reading = float(value[jar])
        return AlarmChange(timestamp_us, rule, jar, raised, None if np.isnan(reading) else reading,
                           None if threshold is None else float(threshold))

    def active_alarms(self) -> list[tuple[str, int]]:
        """(rule name, jar index) of every alarm currently raised."""
        rules, jars = np.nonzero(self.active)
        return [(RULES[r].name, int(j)) for r, j in zip(rules, jars)]


class AlarmingSink:
    """A sink in front of another: evaluates the alarm rules on every batch of readings and passes the
    ``alarm_raised`` / ``alarm_cleared`` events on before the readings (e.g. a batch run's recorder)."""

    def __init__(self, inner, fleet: Fleet, thresholds: AlarmThresholds = AlarmThresholds()):
        self.inner, self.fleet = inner, fleet
        self.monitor = AlarmMonitor.for_fleet(fleet, thresholds)

    def readings(self, batch: ReadingBatch) -> None:
        for change in self.monitor.evaluate_batch(batch):
            self.inner.event(change.event(self.fleet))
        self.inner.readings(batch)

    def event(self, event: Event) -> None:
        if event.kind == "jar_replaced":  # a new jar: its resistance is judged against its own baseline
            slot = self.fleet.battery_ids.index(event.battery_id)
            self.monitor.baseline_resistance_mohm[slot] = event.detail["baseline_resistance_mohm"]
        self.inner.event(event)
