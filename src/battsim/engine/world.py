"""The simulated world on a SimPy virtual clock.

State lives in numpy arrays over every jar (:class:`~battsim.engine.battery.BatteryBank`), site
and string. SimPy processes model only what is discrete and sparse: the daily weather, each
string's rectifier story, the equalize schedule, and the sampler's tick, which advances every jar
at once and hands readings to a sink in batches. Virtual time is seconds since ``start``; tick k
is at ``start + k · interval`` exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import simpy

from battsim.engine import climate
from battsim.engine.battery import MODE_NAMES, BatteryBank, Mode
from battsim.engine.fleet import Fleet, entity_rng
from battsim.engine.readings import ReadingBatch, ReadingBuffer
from battsim.engine.sensors import BatteryMonitor

DEFAULT_START = datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Bangkok"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Rectifier policy (vrla-facts.md): boost ends when the charge current has tapered to 1 % of C10,
# or after at most 24 h; equalize every 90 days, at night, for 6 hours.
BOOST_END_CURRENT_C10 = 0.01
BOOST_MAX_S = 24 * 3600
EQUALIZE_EVERY_DAYS = 90
EQUALIZE_LOCAL_HOUR = 0
EQUALIZE_DURATION_S = 6 * 3600
# Rows handed to the sink per batch: large inserts are what DuckDB ingests fast (measured on 2
# cores: 100 k-row inserts 1.6 M rows/s, 500 k-row inserts 2.3 M rows/s; bench/bench_batch.py).
DEFAULT_BATCH_ROWS = 500_000


def to_unix_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime, computed exactly (no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Event:
    """Something that happened at an instant: an outage, a mode change, a scenario, an alarm."""

    timestamp_us: int
    kind: str
    site_id: str | None = None
    string_id: str | None = None
    battery_id: str | None = None
    detail: dict = field(default_factory=dict)

    def detail_json(self) -> str:
        return json.dumps(self.detail, sort_keys=True)


class Sink(Protocol):
    """Where the world sends what it produces (a recorder, a live broadcaster, a test)."""

    def readings(self, batch: ReadingBatch) -> None: ...

    def event(self, event: Event) -> None: ...


class World:
    """A fleet, its sites and rectifiers, advanced on one virtual clock."""

    def __init__(self, fleet: Fleet, sink: Sink, seed: int = 0, start: datetime = DEFAULT_START,
                 interval_s: int = 60, batch_rows: int = DEFAULT_BATCH_ROWS):
        if interval_s < 1:
            raise ValueError("interval_s must be at least 1")
        self.fleet = fleet
        self.sink = sink
        self.seed = seed
        self.start = start
        self.start_us = to_unix_us(start)
        self.interval_s = int(interval_s)
        self.env = simpy.Environment()
        self.tick_index = 0

        sites = fleet.spec.sites
        self.site_count = len(sites)
        self.site_timezone = [ZoneInfo(site.timezone) for site in sites]
        self.longitude_deg = np.array([site.longitude_deg for site in sites])
        self.climate_offset_c = np.array([site.climate.offset_c for site in sites])
        self.seasonal_scale = np.array([site.climate.seasonal_scale for site in sites])
        self.diurnal_range_c = np.array([site.climate.diurnal_range_c for site in sites])
        self.room_setpoint_c = np.array([site.room_setpoint_c for site in sites])
        self._site_rngs = [entity_rng(seed, site.site_id, "weather") for site in sites]
        self.weather_anomaly_c = np.zeros(self.site_count)

        # Causes that scenarios change: 0 / 1 / NaN mean "as normal".
        self.outdoor_offset_c = np.zeros(self.site_count)
        self.hvac_capacity_fraction = np.ones(self.site_count)
        self.room_override_c = np.full(self.site_count, np.nan)
        self.scenario_mask = np.zeros(fleet.size, dtype=np.uint32)
        # Ohmic resistance rising while a scenario drifts it, in multiples of the new value per second
        # (added to bank.resistance_multiplier each tick, so the rise stays when the drift stops).
        self.resistance_drift_per_s = np.zeros(fleet.size)
        # The scenario controller attached to this world (battsim.scenarios.Scenarios), if any.
        self.scenarios = None

        now_s = self._unix_s(0)
        self.outdoor_c = self._outdoor_temperature(now_s)
        self.room_c = self.room_setpoint_c.copy()

        # Strings: jars of a string are contiguous in the fleet.
        self.string_count = len(fleet.string_ids)
        self.string_start = np.flatnonzero(np.diff(fleet.battery_string, prepend=-1))
        self.string_jars = np.diff(np.append(self.string_start, fleet.size))
        string_cells = np.add.reduceat(
            np.array([fleet.models[m].cells for m in fleet.battery_model], dtype=np.float64), self.string_start
        )
        self.string_load_w = np.array([sites[s].load_kw_per_string * 1e3 for s in fleet.string_site])
        self.string_mode = np.full(self.string_count, Mode.FLOAT, dtype=np.uint8)
        self.string_input_down_causes = np.zeros(self.string_count, dtype=np.int32)
        self.string_mode_since_s = np.zeros(self.string_count)

        self.bank = BatteryBank(
            models=fleet.models,
            model_index=fleet.battery_model,
            profile=fleet.profile,
            capacity_spread=fleet.capacity_spread,
            resistance_spread=fleet.resistance_spread,
            initial_soh_pct=fleet.initial_soh_pct,
            initial_temperature_c=self.room_c[fleet.battery_site],
        )
        self.string_rated_ah = np.add.reduceat(self.bank.rated_capacity_ah, self.string_start) / self.string_jars
        # Low-voltage disconnect of each string: its cells at the mean end voltage of its jars.
        self.string_end_voltage_v = string_cells * np.add.reduceat(
            self.bank.end_voltage_v_per_cell, self.string_start
        ) / self.string_jars
        # Each jar's terminal voltage at the last tick: what a sensor fault freezes.
        self.jar_voltage_v = self.bank.discharge_voltage_v(np.zeros(fleet.size))
        self.string_voltage_v = np.add.reduceat(self.jar_voltage_v, self.string_start)
        self.string_current_a = np.zeros(self.string_count)

        self.monitor = BatteryMonitor(
            fleet.site_slices(),
            [entity_rng(seed, site.site_id, "sensor-noise") for site in sites],
            self.bank.new_resistance_mohm,
            interval_s=self.interval_s,
        )
        self.buffer = ReadingBuffer(fleet.size, max(1, batch_rows // fleet.size))

        self._signals: dict[str, list[simpy.Event]] = {
            name: [self.env.event() for _ in range(self.string_count)]
            for name in ("input_lost", "input_restored", "low_voltage", "recharged")
        }
        for site_index in range(self.site_count):
            self.env.process(self._weather(site_index))
            self.env.process(self._equalize_schedule(site_index))
        for string_index in range(self.string_count):
            self.env.process(self._rectifier(string_index))
        self.env.process(self._sampler())

    # ----------------------------------------------------------------------------- time
    def _unix_s(self, sim_s: float) -> float:
        return self.start_us / 1e6 + sim_s

    def now_us(self) -> int:
        return self.start_us + int(round(self.env.now * 1e6))

    def sim_seconds(self, moment: datetime) -> float:
        """Virtual seconds from the start to an aware datetime."""
        return (to_unix_us(moment) - self.start_us) / 1e6

    def run_until(self, sim_s: float) -> None:
        """Advance the world to virtual second ``sim_s`` (ticks at exactly ``sim_s`` are not run yet)."""
        if sim_s > self.env.now:
            self.env.run(until=sim_s)

    def flush(self) -> None:
        """Measure and hand over the readings buffered so far."""
        batch = self.buffer.take()
        if batch is not None:
            self.monitor.measure(batch)
            self.sink.readings(batch)

    def emit(self, kind: str, site: int | None = None, string: int | None = None, battery: int | None = None,
             **detail) -> None:
        fleet = self.fleet
        if battery is not None and string is None:
            string = int(fleet.battery_string[battery])
        if string is not None and site is None:
            site = int(fleet.string_site[string])
        self.sink.event(Event(
            timestamp_us=self.now_us(),
            kind=kind,
            site_id=fleet.site_ids[site] if site is not None else None,
            string_id=fleet.string_ids[string] if string is not None else None,
            battery_id=fleet.battery_ids[battery] if battery is not None else None,
            detail=detail,
        ))

    # ----------------------------------------------------------------------------- set-up
    def _outdoor_temperature(self, unix_s: float) -> np.ndarray:
        return climate.outdoor_temperature_c(
            unix_s, self.longitude_deg, self.climate_offset_c, self.seasonal_scale, self.diurnal_range_c,
            self.weather_anomaly_c,
        ) + self.outdoor_offset_c

    # ----------------------------------------------------------------------------- grid
    def _signal(self, name: str, string: int) -> simpy.Event:
        return self._signals[name][string]

    def _fire(self, name: str, string: int) -> None:
        event = self._signals[name][string]
        self._signals[name][string] = self.env.event()
        event.succeed()

    def input_up(self, string: int) -> bool:
        return self.string_input_down_causes[string] == 0

    def lose_input(self, strings, cause: str) -> None:
        """One more reason for these strings' rectifier input to be down (a grid outage, a UPS fault)."""
        for string in np.atleast_1d(strings):
            string = int(string)
            self.string_input_down_causes[string] += 1
            if self.string_input_down_causes[string] == 1:
                self.emit("outage_start", string=string, cause=cause)
                self._fire("input_lost", string)

    def restore_input(self, strings, cause: str) -> None:
        """One reason fewer for the input to be down; the input returns when none are left."""
        for string in np.atleast_1d(strings):
            string = int(string)
            if self.string_input_down_causes[string] == 0:
                continue
            self.string_input_down_causes[string] -= 1
            if self.string_input_down_causes[string] == 0:
                self.emit("outage_end", string=string, cause=cause)
                self._fire("input_restored", string)

    def site_strings(self, site: int) -> np.ndarray:
        return np.flatnonzero(self.fleet.string_site == site)

    # ----------------------------------------------------------------------------- processes
    def _set_mode(self, string: int, mode: Mode) -> None:
        previous = Mode(self.string_mode[string])
        if previous == mode:
            return
        self.string_mode[string] = mode
        self.string_mode_since_s[string] = self.env.now
        self.emit("mode_change", string=string, **{"from": MODE_NAMES[previous], "to": MODE_NAMES[mode]})

    def _rectifier(self, string: int):
        """Float until the input is lost; discharge into the load, disconnecting at the end voltage;
        when the input returns, boost at the current limit until the current tapers, then float."""
        while True:
            if self.input_up(string):
                yield self._signal("input_lost", string)
            self._set_mode(string, Mode.DISCHARGE)
            restored, low_voltage = self._signal("input_restored", string), self._signal("low_voltage", string)
            yield restored | low_voltage
            if not restored.triggered:
                self._set_mode(string, Mode.DISCONNECTED)
                self.emit("low_voltage_disconnect", string=string,
                          voltage_v=round(float(self.string_voltage_v[string]), 3))
                yield restored
            self._set_mode(string, Mode.BOOST)
            lost = self._signal("input_lost", string)
            yield self._signal("recharged", string) | lost | self.env.timeout(BOOST_MAX_S)
            if not lost.triggered:
                self._set_mode(string, Mode.FLOAT)

    def _weather(self, site: int):
        """Every local solar midnight, tomorrow's weather: a persistent day-to-day anomaly (AR(1))."""
        rng = self._site_rngs[site]
        while True:
            self.weather_anomaly_c[site] = 0.7 * self.weather_anomaly_c[site] + 0.9 * rng.standard_normal()
            yield self.env.timeout(86_400)

    def _equalize_schedule(self, site: int):
        """Every 90 days at local midnight, strings resting on float get an equalize charge."""
        zone = self.site_timezone[site]
        first_day = entity_rng(self.seed, self.fleet.site_ids[site], "equalize").integers(1, EQUALIZE_EVERY_DAYS)
        local_start = self.start.astimezone(zone)
        day = local_start.date() + timedelta(days=int(first_day))
        while True:
            moment = datetime(day.year, day.month, day.day, EQUALIZE_LOCAL_HOUR, tzinfo=zone)
            yield self.env.timeout(max(0.0, self.sim_seconds(moment) - self.env.now))
            strings = [s for s in self.site_strings(site) if self.string_mode[s] == Mode.FLOAT and self.input_up(s)]
            for string in strings:
                self._set_mode(string, Mode.EQUALIZE)
            yield self.env.timeout(EQUALIZE_DURATION_S)
            for string in strings:
                if self.string_mode[string] == Mode.EQUALIZE:
                    self._set_mode(string, Mode.FLOAT)
            day += timedelta(days=EQUALIZE_EVERY_DAYS)

    def _sampler(self):
        """Tick: advance every jar over the interval, record one reading each."""
        self._tick(0.0)
        while True:
            yield self.env.timeout(self.interval_s)
            self._tick(float(self.interval_s))

    # ----------------------------------------------------------------------------- the tick
    def _tick(self, dt_s: float) -> None:
        fleet, bank = self.fleet, self.bank
        self.outdoor_c = self._outdoor_temperature(self._unix_s(self.env.now))
        room_c = climate.room_temperature_step_c(
            self.room_c, self.outdoor_c, self.room_setpoint_c, self.hvac_capacity_fraction, dt_s
        )
        # A held room is the room's state, so when the hold ends the room relaxes from there.
        self.room_c = np.where(np.isnan(self.room_override_c), room_c, self.room_override_c)
        jar_room_c = self.room_c[fleet.battery_site]
        if self.resistance_drift_per_s.any():
            bank.resistance_multiplier += self.resistance_drift_per_s * dt_s

        jar_mode = self.string_mode[fleet.battery_string]
        string_current_a = self.string_load_w / np.maximum(self.string_voltage_v, 1.0)
        terminal = bank.advance(dt_s, jar_mode, string_current_a[fleet.battery_string], jar_room_c)
        self.jar_voltage_v = terminal.voltage_v
        self.string_voltage_v = np.add.reduceat(terminal.voltage_v, self.string_start)
        self.string_current_a = np.add.reduceat(terminal.current_a, self.string_start) / self.string_jars
        self._check_thresholds()
        self._record(terminal, jar_room_c, jar_mode)

    def _check_thresholds(self) -> None:
        """Wake the rectifiers whose string crossed the end voltage or finished its boost."""
        low = (self.string_mode == Mode.DISCHARGE) & (self.string_voltage_v < self.string_end_voltage_v)
        recharged = (self.string_mode == Mode.BOOST) & (
            self.string_current_a < BOOST_END_CURRENT_C10 * self.string_rated_ah
        ) & (self.env.now > self.string_mode_since_s)
        for string in np.flatnonzero(low):
            self._fire("low_voltage", int(string))
        for string in np.flatnonzero(recharged):
            self._fire("recharged", int(string))

    def _record(self, terminal, jar_room_c, jar_mode) -> None:
        bank, buffer = self.bank, self.buffer
        buffer.tick_view("timestamp_us")[:] = self.start_us + self.tick_index * self.interval_s * 1_000_000
        buffer.tick_view("true_voltage_v")[:] = terminal.voltage_v
        buffer.tick_view("current_a")[:] = terminal.current_a
        buffer.tick_view("true_temperature_c")[:] = bank.temperature_c
        soc, resistance_mohm = bank.state_of_charge_and_resistance_mohm()
        buffer.tick_view("internal_resistance_mohm")[:] = resistance_mohm
        np.multiply(soc, 100.0, out=buffer.tick_view("soc_pct"), casting="unsafe")
        buffer.tick_view("ambient_c")[:] = jar_room_c
        buffer.tick_view("mode")[:] = jar_mode
        buffer.tick_view("true_soh_pct")[:] = bank.soh_pct
        buffer.tick_view("scenario_mask")[:] = self.scenario_mask
        self.tick_index += 1
        if buffer.commit_tick():
            self.flush()
