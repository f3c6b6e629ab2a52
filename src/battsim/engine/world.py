"""The simulated world on a SimPy virtual clock.

State lives in numpy arrays over every jar (:class:`~battsim.engine.battery.BatteryBank`), site
and string. SimPy processes model only what is discrete and sparse: the daily weather, the equalize
schedule, scenarios, and the sampler's tick, which records every jar at once and hands readings to a
sink in batches. Virtual time is seconds since ``start``; tick k is at ``start + k · interval`` exactly.

The physics does not step with the ticks. Before SimPy processes any event (a tick, an outage, a
scenario at 14:00) the world advances every jar to that event's instant, in sub-steps no longer
than what the strings' modes allow (10 s discharging, 60 s charging, 300 s on float), so a
recording at any interval samples the same trajectory. Thresholds the physics crosses itself (the
low-voltage disconnect, the end of a boost) are found inside the sub-step where they happen and
take effect at that instant (``docs/physics.md`` §3, "Sub-steps and events").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import simpy

from battsim.engine import climate
from battsim.engine.battery import (
    BOOST,
    DISCHARGE,
    FLOAT,
    FLOAT_CURRENT_SPREAD_SIGMA_LN,
    MODE_NAMES,
    BatteryBank,
    Mode,
    Terminal,
)
from battsim.engine.fleet import Fleet, entity_rng
from battsim.engine.monitoring import MonitorSchedule, build_monitor
from battsim.engine.readings import ReadingBatch, ReadingBuffer

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

# Longest physics sub-step in each mode, s. Discharge changes the state fastest (a UPS string empties
# in 1-3 h and its knee takes minutes); a boost tapers over hours; float drifts with the room.
# At these lengths a 3600 s recording is its 10 s one down-sampled to within the tolerances that
# tests/test_substeps.py states.
# Resting on float a string changes only as fast as the room (an hour resolves its daily cycle),
# unless it is still finishing a charge (current above 0.1 % of C10, about 5 × a float current) or a
# jar heats itself (heat that holds it 2 K above its air): then current, charge and temperature
# move within minutes.
MAX_STEP_S = {Mode.FLOAT: 3600.0, Mode.BOOST: 60.0, Mode.EQUALIZE: 60.0, Mode.DISCHARGE: 10.0,
              Mode.DISCONNECTED: 3600.0}
SETTLING_STEP_S = 300.0
SETTLING_CURRENT_C10 = 0.001
SELF_HEATING_K = 2.0
# A threshold crossing is located within the sub-step to this share of the threshold (regula falsi
# from the state saved before the sub-step): 25 mV on a 252 V string, 1 % of the boost end current.
LOW_VOLTAGE_TOLERANCE = 1e-4
BOOST_END_TOLERANCE = 1e-2
CROSSING_ITERATIONS = 12


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


class PhysicsClock(simpy.Environment):
    """A SimPy environment that brings the world's physics up to each event's instant before the event
    acts, so every discrete change (an outage, a scenario, a failure) happens at its own time."""

    def __init__(self, world: World):
        super().__init__()
        self._world = world

    def step(self) -> None:
        due = self.peek()
        if due > self._world.physics_s and due != math.inf:
            self._world.advance_physics_to(due)
        super().step()
        self._world.after_event()


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
        self.env = PhysicsClock(self)
        self.tick_index = 0
        # Virtual time the jars have been advanced to, and the circuit solved there. The solution is
        # stale after anything discrete happened (a mode change, a scenario, a failure).
        self.physics_s = 0.0
        self.terminal: Terminal | None = None
        self._stale = True
        self._ticked = False

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
        self.capacity_tests: dict = {}  # string -> the capacity test running on it (scenarios/maintenance.py)

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
        # A boost ends when its current has tapered, or at the latest BOOST_MAX_S after it began.
        self.string_boost_until_s = np.full(self.string_count, np.inf)
        # What the monitor logs of each discharge and recharge: charge and energy through the string.
        self.string_discharged_ah = np.zeros(self.string_count)
        self.string_discharged_wh = np.zeros(self.string_count)
        self.string_recharged_ah = np.zeros(self.string_count)

        # Each jar's own recombination-current spread (manufacturing), from its own stream.
        float_current_spread = np.exp(FLOAT_CURRENT_SPREAD_SIGMA_LN * np.array(
            [entity_rng(seed, battery_id, "float-current").standard_normal() for battery_id in fleet.battery_ids]))
        self.bank = BatteryBank(
            models=fleet.models,
            model_index=fleet.battery_model,
            profile=fleet.profile,
            capacity_spread=fleet.capacity_spread,
            resistance_spread=fleet.resistance_spread,
            initial_soh_pct=fleet.initial_soh_pct,
            initial_temperature_c=self.room_c[fleet.battery_site] + fleet.rack_offset_c,
            string_of_jar=fleet.battery_string,
            float_current_spread=float_current_spread,
            population=fleet.ageing,
        )
        self.jar_air_c = self.jar_ambient_c()  # the air around each jar now (jar_ambient_c at physics_s)
        self.string_rated_ah = np.add.reduceat(self.bank.rated_capacity_ah, self.string_start) / self.string_jars
        self.string_boost_end_a = BOOST_END_CURRENT_C10 * self.string_rated_ah
        # What keeps a floating string on short sub-steps (_step_limit_s), per string and per jar.
        self.string_settling_a = SETTLING_CURRENT_C10 * self.string_rated_ah
        self.jar_self_heating_w = SELF_HEATING_K * self.bank.heat_transfer_w_per_k
        # Low-voltage disconnect of each string: its cells at the mean end voltage of its jars.
        self.string_end_voltage_v = string_cells * np.add.reduceat(
            self.bank.end_voltage_v_per_cell, self.string_start
        ) / self.string_jars
        self._solve()

        self.monitor = build_monitor(self)
        self.buffer = ReadingBuffer(fleet.size, max(1, batch_rows // fleet.size), self.string_count)
        # The batteries-table key of the jar in each slot (a replaced jar's successor gets a new key).
        self.battery_key = np.arange(fleet.size, dtype=np.uint16)
        self.next_battery_key = fleet.size
        self.original_battery_ids = list(fleet.battery_ids)
        self.replacements: dict[int, int] = {}  # replacements per slot (engine/maintenance.py)
        self.monitoring = MonitorSchedule(self)

        for site_index in range(self.site_count):
            self.env.process(self._weather(site_index))
            self.env.process(self._equalize_schedule(site_index))
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
        self._stale = True  # the caller may have changed causes since the last run
        if sim_s > self.env.now:
            self.env.run(until=sim_s)

    def flush(self) -> None:
        """Measure and hand over the readings buffered so far."""
        batch = self.buffer.take()
        if batch is not None:
            self.monitor.measure(batch)
            self.sink.readings(batch)

    def emit(self, kind: str, site: int | None = None, string: int | None = None, battery: int | None = None,
             at_s: float | None = None, **detail) -> None:
        fleet = self.fleet
        if battery is not None and string is None:
            string = int(fleet.battery_string[battery])
        if string is not None and site is None:
            site = int(fleet.string_site[string])
        self.sink.event(Event(
            timestamp_us=self.now_us() if at_s is None else self.start_us + int(round(at_s * 1e6)),
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

    # ----------------------------------------------------------------------------- physics
    def jar_ambient_c(self) -> np.ndarray:
        """The air around each jar, °C: its battery room's, warmer or cooler by its place in the rack (rack.py)."""
        return self.room_c[self.fleet.battery_site] + self.fleet.rack_offset_c

    def _solve(self) -> Terminal:
        """The circuit of every string at the present state; what a tick records and the next step uses."""
        terminal = self.bank.solve(self.string_mode, self.jar_air_c, load_w=self.string_load_w)
        self.terminal = terminal
        self._stale = False
        self.jar_voltage_v = terminal.voltage_v
        self.string_voltage_v = terminal.string_voltage_v
        self.string_current_a = terminal.string_current_a
        return terminal

    def catch_up(self) -> None:
        """Advance the physics to now before a discrete change made outside a SimPy event; the next
        step re-solves the circuit with the change."""
        self.advance_physics_to(self.env.now)
        self._stale = True

    def after_event(self) -> None:
        """Called after each SimPy event: anything but a tick may have changed a cause."""
        if not self._ticked:
            self._stale = True
        self._ticked = False

    def _step_limit_s(self, all_float: bool) -> float:
        if all_float:
            limit_s = MAX_STEP_S[Mode.FLOAT]
        else:
            limit_s = min(MAX_STEP_S[Mode(mode)] for mode in np.unique(self.string_mode))
        if limit_s > SETTLING_STEP_S and ((self.string_current_a > self.string_settling_a).any()
                                          or (self.terminal.heat_w > self.jar_self_heating_w).any()):
            limit_s = SETTLING_STEP_S
        return limit_s

    def advance_physics_to(self, target_s: float) -> None:
        """Advance every jar to virtual second ``target_s`` in sub-steps, acting on the thresholds
        (low-voltage disconnect, end of boost) at the instants they are crossed."""
        if self._stale or self.terminal is None:
            self._solve()
        while self.physics_s < target_s:
            # Most sub-steps of a run have every string on float: nothing to watch, no boost to end.
            all_float = bool((self.string_mode == FLOAT).all())
            dt_s = min(target_s - self.physics_s, self._step_limit_s(all_float))
            if all_float:
                self._physics_step(dt_s, all_float)
                continue
            boosting = self.string_mode == BOOST
            if boosting.any():
                dt_s = max(min(dt_s, float(self.string_boost_until_s[boosting].min()) - self.physics_s), 0.0)
            watched = boosting.any() or (self.string_mode == DISCHARGE).any()
            if watched:
                saved = self._snapshot()
                before = self._threshold_margin(self.terminal)
            self._physics_step(dt_s)
            if watched:
                after = self._threshold_margin(self.terminal)
                crossed = (before > 0.0) & (after <= 0.0)
                if crossed.any():
                    self._locate_crossing(saved, dt_s, before, after, crossed)
                self._act_on_thresholds(before)
            self._end_overdue_boosts()

    def _physics_step(self, dt_s: float, all_float: bool = False) -> None:
        """One sub-step of every jar at the present circuit solution, then the circuit at the new state."""
        terminal = self.terminal
        start_s = self.physics_s
        if dt_s > 0.0:
            self.outdoor_c = self._outdoor_temperature(self._unix_s(start_s))
            room_c = climate.room_temperature_step_c(
                self.room_c, self.outdoor_c, self.room_setpoint_c, self.hvac_capacity_fraction, dt_s)
            # A held room is the room's state, so when the hold ends the room relaxes from there.
            self.room_c = np.where(np.isnan(self.room_override_c), room_c, self.room_override_c)
            self.jar_air_c = self.jar_ambient_c()
            if self.resistance_drift_per_s.any():
                self.bank.resistance_multiplier = self.bank.resistance_multiplier + self.resistance_drift_per_s * dt_s
            self.bank.step(dt_s, terminal, self.jar_air_c)
            current_a = terminal.string_current_a
            hours = dt_s / 3600.0
            if not (all_float or (self.string_mode == FLOAT).all()):
                delivering = self.string_mode == DISCHARGE
                self.string_discharged_ah = self.string_discharged_ah - np.where(delivering, current_a, 0.0) * hours
                self.string_discharged_wh = self.string_discharged_wh - np.where(
                    delivering, current_a * terminal.string_voltage_v, 0.0) * hours
                self.string_recharged_ah = self.string_recharged_ah + np.where(
                    self.string_mode == BOOST, current_a, 0.0) * hours
        self.physics_s = start_s + dt_s
        self._solve()

    def _threshold_margin(self, terminal: Terminal) -> np.ndarray:
        """How far each string is from its threshold (> 0 not reached): a discharging string's voltage
        above its disconnect voltage, a boosting string's current above its end current; NaN for others."""
        mode = self.string_mode
        return np.where(mode == Mode.DISCHARGE, terminal.string_voltage_v - self.string_end_voltage_v,
                        np.where(mode == Mode.BOOST, terminal.string_current_a - self.string_boost_end_a, np.nan))

    def _tolerance(self) -> np.ndarray:
        return np.where(self.string_mode == Mode.DISCHARGE, LOW_VOLTAGE_TOLERANCE * self.string_end_voltage_v,
                        BOOST_END_TOLERANCE * self.string_boost_end_a)

    def _snapshot(self) -> tuple:
        return (self.bank.snapshot(), self.physics_s, self.room_c.copy(), self.outdoor_c.copy(),
                self.string_discharged_ah.copy(), self.string_discharged_wh.copy(), self.string_recharged_ah.copy())

    def _restore(self, saved: tuple) -> None:
        bank_state, self.physics_s, room_c, outdoor_c, discharged_ah, discharged_wh, recharged_ah = saved
        self.bank.restore(bank_state)
        self.room_c, self.outdoor_c = room_c.copy(), outdoor_c.copy()
        self.jar_air_c = self.jar_ambient_c()
        self.string_discharged_ah, self.string_discharged_wh = discharged_ah.copy(), discharged_wh.copy()
        self.string_recharged_ah = recharged_ah.copy()

    def _locate_crossing(self, saved: tuple, dt_s: float, before: np.ndarray, after: np.ndarray,
                         crossed: np.ndarray) -> None:
        """Redo the sub-step up to the instant the first string crosses its threshold (regula falsi on
        the share of the sub-step, each trial from the state saved before it)."""
        share = np.where(crossed, before / np.where(crossed, before - after, 1.0), np.inf)
        first = int(np.argmin(share))
        tolerance = float(self._tolerance()[first])
        low, high, margin_low, margin_high = 0.0, 1.0, float(before[first]), float(after[first])
        for _ in range(CROSSING_ITERATIONS):
            trial = low + (high - low) * margin_low / (margin_low - margin_high)
            self._restore(saved)
            self._physics_step(trial * dt_s)
            margin = float(self._threshold_margin(self.terminal)[first])
            if abs(margin) <= tolerance:
                return
            if margin > 0.0:
                low, margin_low = trial, margin
                margin_high *= 0.5  # Illinois: keep the stale end from stalling the bracket
            else:
                high, margin_high = trial, margin
                margin_low *= 0.5

    def _act_on_thresholds(self, before: np.ndarray) -> None:
        """Disconnect the strings at their end voltage and end the boosts whose current has tapered
        (within tolerance of the threshold now, or already below it when the step began)."""
        margin = self._threshold_margin(self.terminal)
        reached = (margin <= self._tolerance()) | (before <= 0.0)
        for string in np.flatnonzero(reached & (self.string_mode == Mode.DISCHARGE)):
            self._end_discharge(int(string), "low_voltage_disconnect", at_s=self.physics_s)
            self._set_mode(int(string), Mode.DISCONNECTED, at_s=self.physics_s)
            self.emit("low_voltage_disconnect", string=int(string), at_s=self.physics_s,
                      voltage_v=round(float(self.string_voltage_v[string]), 3))
        for string in np.flatnonzero(reached & (self.string_mode == BOOST)):
            self._end_boost(int(string), "tapered", at_s=self.physics_s)
        if self._stale:
            self._solve()

    def _end_overdue_boosts(self) -> None:
        for string in np.flatnonzero((self.string_mode == BOOST) & (self.string_boost_until_s <= self.physics_s)):
            self._end_boost(int(string), "timeout", at_s=self.physics_s)
        if self._stale:
            self._solve()

    # ----------------------------------------------------------------------------- grid
    def input_up(self, string: int) -> bool:
        return self.string_input_down_causes[string] == 0

    def lose_input(self, strings, cause: str) -> None:
        """One more reason for these strings' rectifier input to be down (a grid outage, a UPS fault):
        the strings discharge into their load from this instant."""
        self.catch_up()
        for string in np.atleast_1d(strings):
            string = int(string)
            self.string_input_down_causes[string] += 1
            if self.string_input_down_causes[string] == 1:
                self.emit("outage_start", string=string, cause=cause)
                if self.string_mode[string] == Mode.BOOST:
                    self._end_boost(string, "input_lost")
                self.string_discharged_ah[string] = self.string_discharged_wh[string] = 0.0
                self._set_mode(string, Mode.DISCHARGE)

    def restore_input(self, strings, cause: str) -> None:
        """One reason fewer for the input to be down; when none are left the rectifier recharges the
        string at its current limit (boost) until the current tapers, then floats it."""
        self.catch_up()
        for string in np.atleast_1d(strings):
            string = int(string)
            if self.string_input_down_causes[string] == 0:
                continue
            self.string_input_down_causes[string] -= 1
            if self.string_input_down_causes[string] == 0:
                self.emit("outage_end", string=string, cause=cause)
                if self.string_mode[string] == Mode.DISCHARGE:
                    self._end_discharge(string, "input_restored")
                self.string_recharged_ah[string] = 0.0
                self.string_boost_until_s[string] = self.env.now + BOOST_MAX_S
                self._set_mode(string, Mode.BOOST)

    def site_strings(self, site: int) -> np.ndarray:
        return np.flatnonzero(self.fleet.string_site == site)

    # ----------------------------------------------------------------------------- modes
    def _set_mode(self, string: int, mode: Mode, at_s: float | None = None) -> None:
        previous = Mode(self.string_mode[string])
        if previous == mode:
            return
        self.string_mode[string] = mode
        self.string_mode_since_s[string] = self.env.now if at_s is None else at_s
        self._stale = True
        self.emit("mode_change", string=string, at_s=at_s, **{"from": MODE_NAMES[previous], "to": MODE_NAMES[mode]})

    def _end_discharge(self, string: int, reason: str, at_s: float | None = None) -> None:
        """Log the discharge as a monitor does: how long, how much charge and energy the string delivered."""
        end_s = self.env.now if at_s is None else at_s
        self.emit("discharge_summary", string=string, at_s=at_s, reason=reason,
                  duration_s=round(end_s - float(self.string_mode_since_s[string]), 3),
                  ah=round(float(self.string_discharged_ah[string]), 4),
                  wh=round(float(self.string_discharged_wh[string]), 2))

    def _end_boost(self, string: int, reason: str, at_s: float | None = None) -> None:
        end_s = self.env.now if at_s is None else at_s
        self.emit("recharge_summary", string=string, at_s=at_s, reason=reason,
                  duration_s=round(end_s - float(self.string_mode_since_s[string]), 3),
                  ah=round(float(self.string_recharged_ah[string]), 4))
        self.string_boost_until_s[string] = np.inf
        if reason != "input_lost":
            self._set_mode(string, Mode.FLOAT, at_s=at_s)

    # ----------------------------------------------------------------------------- processes
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
        """Tick: record one reading of every jar at exactly start + k · interval."""
        self._tick()
        while True:
            yield self.env.timeout(self.interval_s)
            self._tick()

    # ----------------------------------------------------------------------------- the tick
    def _tick(self) -> None:
        self._ticked = True
        terminal = self._solve() if self._stale else self.terminal
        bank, buffer = self.bank, self.buffer
        timestamp_us = self.start_us + self.tick_index * self.interval_s * 1_000_000
        buffer.tick_view("timestamp_us")[:] = timestamp_us
        buffer.tick_view("true_voltage_v")[:] = terminal.voltage_v
        buffer.tick_view("true_temperature_c")[:] = bank.temperature_c
        buffer.tick_view("true_internal_resistance_mohm")[:] = terminal.resistance_mohm
        np.multiply(terminal.soc, 100.0, out=buffer.tick_view("true_soc_pct"), casting="unsafe")
        self.monitoring.tick(terminal, timestamp_us)  # string channels, ohmic tests, held resistance, room probe
        buffer.tick_view("mode")[:] = self.string_mode[self.fleet.battery_string]
        buffer.tick_view("true_soh_pct")[:] = bank.soh_pct
        buffer.tick_view("scenario_mask")[:] = self.scenario_mask
        self.tick_index += 1
        if buffer.commit_tick():
            self.flush()
