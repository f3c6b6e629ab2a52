"""What the battery monitor does on its own schedule: ohmic tests, the string channels, communication gaps.

A :class:`MonitorSchedule` belongs to one :class:`~battsim.engine.world.World`. It builds the world's
:class:`~battsim.engine.sensors.BatteryMonitor` (each jar's, string's and room's sensor errors drawn from
their own seeded streams), runs the per-site ohmic-test schedule and the random communication gaps as SimPy
processes, and fills the string channels and test results of each tick (:meth:`MonitorSchedule.tick`).

Ohmic tests (``SiteSpec.ohmic_test_every_days`` at ``ohmic_test_local_hour``, default daily at 03:00 local;
monitor manuals set daily to monthly) run only on the strings of the site resting on float with their input
up, at the first tick at or after the scheduled instant, and once at the monitor's first scan so that every
reading has a value to hold. The test's momentary load (:data:`~battsim.engine.sensors.OHMIC_TEST_CURRENT_C10`)
pulls each tested jar's voltage down by load × resistance at that tick, in the true and measured voltage
alike; it lasts seconds, so it takes no measurable charge.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from battsim.engine.battery import Mode
from battsim.engine.fleet import entity_rng
from battsim.engine.physics import SECONDS_PER_YEAR
from battsim.engine.sensors import (
    JARS_PER_MODULE,
    OHMIC_TEST_CURRENT_C10,
    BatteryMonitor,
    Calibration,
    StringSensors,
)

if TYPE_CHECKING:
    from battsim.engine.world import World

# Ripple through a VRLA string (makers cap it at 0.05 C10 A rms; IEEE 1188 annex): a healthy rectifier puts
# about 0.01 C10 through a charging string (each string's own, log-normal with σ 0.3); an inverter drawing from
# a discharging string adds ripple of about 15 % of its DC current (the 2 × line-frequency component).
CHARGER_RIPPLE_C10 = 0.01
CHARGER_RIPPLE_SIGMA_LN = 0.3
INVERTER_RIPPLE_FRACTION = 0.15
OHMIC_TEST_KIND = 0  # ohmic_tests.instrument: the monitor's own test
HANDHELD_KIND = 1  # ohmic_tests.instrument: a technician's handheld impedance meter (impedance survey)


def build_monitor(world: World) -> BatteryMonitor:
    """The world's monitor: its jars' channels and each string's sensors, every error from its own stream."""
    fleet, seed = world.fleet, world.seed
    jar_normals = np.array([entity_rng(seed, battery_id, "calibration").standard_normal(5)
                            for battery_id in fleet.battery_ids]).reshape(-1, 5)
    site_normals = np.array([entity_rng(seed, site_id, "room-probe-calibration").standard_normal()
                             for site_id in fleet.site_ids])
    string_normals = np.array([entity_rng(seed, string_id, "hall-sensor").standard_normal(2)
                               for string_id in fleet.string_ids]).reshape(-1, 2)
    string_bounds = np.append(np.flatnonzero(np.diff(fleet.string_site, prepend=-1)), len(fleet.string_ids))
    string_slices = [slice(int(a), int(b)) for a, b in zip(string_bounds[:-1], string_bounds[1:])]
    strings = StringSensors(string_slices, [entity_rng(seed, site_id, "string-sensors") for site_id in fleet.site_ids],
                            world.string_rated_ah, string_normals)
    return BatteryMonitor(
        fleet.site_slices(),
        [entity_rng(seed, site_id, "sensor-noise") for site_id in fleet.site_ids],
        world.bank.new_resistance_mohm,
        interval_s=world.interval_s,
        calibration=Calibration.draw(jar_normals, site_normals),
        strings=strings,
        jar_string=fleet.battery_string,
        rated_ah=world.bank.rated_capacity_ah,
        start_us=world.start_us,
        aux_rngs=[(entity_rng(seed, site_id, "room-probe"), entity_rng(seed, site_id, "ohmic-test"))
                  for site_id in fleet.site_ids],
    )


def module_of_jars(positions: np.ndarray) -> np.ndarray:
    """The monitor module (0-based, within its string) each jar at 1-based ``positions`` is wired to."""
    return (np.asarray(positions) - 1) // JARS_PER_MODULE


class MonitorSchedule:
    """The monitor's own processes on a world, and what each tick adds to the readings."""

    def __init__(self, world: World):
        self.world = world
        fleet = world.fleet
        self.ripple_c10 = CHARGER_RIPPLE_C10 * np.exp(CHARGER_RIPPLE_SIGMA_LN * np.array(
            [entity_rng(world.seed, string_id, "charger-ripple").standard_normal() for string_id in fleet.string_ids]))
        self.charger_ripple_a = self.ripple_c10 * world.string_rated_ah
        self.test_current_a = OHMIC_TEST_CURRENT_C10 * world.bank.rated_capacity_ah
        # Sites whose ohmic test is due at the next tick; every site at the first scan.
        self.due = set(range(world.site_count))
        for site in range(world.site_count):
            world.env.process(self._ohmic_schedule(site))
            if fleet.site(site).comm_gaps_per_module_year > 0:
                world.env.process(self._communication_gaps(site))

    # ----------------------------------------------------------------------------- processes
    def _ohmic_schedule(self, site: int):
        world = self.world
        spec = world.fleet.site(site)
        zone = world.site_timezone[site]
        day = world.start.astimezone(zone).date()
        while True:
            moment = datetime(day.year, day.month, day.day, spec.ohmic_test_local_hour, tzinfo=zone)
            wait_s = world.sim_seconds(moment) - world.env.now
            if wait_s >= 0:
                yield world.env.timeout(wait_s)
                self.due.add(site)
            day += timedelta(days=spec.ohmic_test_every_days)

    def _communication_gaps(self, site: int):
        """Now and then a module of the site stops answering for a while (Poisson; exponential lengths)."""
        world, fleet = self.world, self.world.fleet
        spec = fleet.site(site)
        jars = np.flatnonzero(fleet.battery_site == site)
        modules = fleet.battery_string[jars] * 10_000 + module_of_jars(fleet.battery_position[jars])
        names = np.unique(modules)
        rng = entity_rng(world.seed, fleet.site_ids[site], "communication-gaps")
        mean_wait_s = SECONDS_PER_YEAR / (spec.comm_gaps_per_module_year * len(names))
        while True:
            yield world.env.timeout(rng.exponential(mean_wait_s))
            module = names[rng.integers(len(names))]
            lost = jars[modules == module]
            duration_s = max(world.interval_s, rng.exponential(spec.comm_gap_mean_minutes * 60.0))
            now_us = world.now_us()
            world.monitor.add_gap(lost, now_us, now_us + int(round(duration_s * 1e6)))
            first = int(lost[0])
            world.emit("communication_gap", string=int(fleet.battery_string[first]),
                       module=int(module_of_jars(fleet.battery_position[first])) + 1,
                       batteries=[fleet.battery_ids[j] for j in lost], duration_s=round(duration_s, 3))

    # ----------------------------------------------------------------------------- the tick
    def tick(self, terminal, timestamp_us: int) -> None:
        """Fill the tick's string channels and monitor-held jar columns; run the ohmic tests that are due."""
        world, buffer, fleet = self.world, self.world.buffer, self.world.fleet
        monitor = world.monitor
        string_voltage_v = terminal.string_voltage_v
        if self.due:
            string_voltage_v = string_voltage_v - self._ohmic_tests(terminal, timestamp_us)
        buffer.tick_view("internal_resistance_mohm")[:] = monitor.held_resistance_mohm
        # The room's true air; the monitor turns it into its room probe's reading when it measures the batch.
        buffer.tick_view("ambient_c")[:] = world.room_c[fleet.battery_site]
        mode = world.string_mode
        current_a = terminal.string_current_a
        on_battery = mode >= Mode.DISCHARGE  # discharge or disconnected
        ripple_a = self.charger_ripple_a
        if on_battery.any():
            ripple_a = np.where(mode == Mode.DISCHARGE, INVERTER_RIPPLE_FRACTION * np.abs(current_a),
                                np.where(on_battery, 0.0, ripple_a))
        string_ohm = np.add.reduceat(terminal.resistance_mohm, world.string_start) * 1e-3
        buffer.string_tick_view("timestamp_us")[:] = timestamp_us
        buffer.string_tick_view("true_voltage_v")[:] = string_voltage_v
        buffer.string_tick_view("true_current_a")[:] = current_a
        buffer.string_tick_view("true_ripple_current_rms_a")[:] = ripple_a
        buffer.string_tick_view("ripple_voltage_rms_v")[:] = ripple_a * string_ohm
        buffer.string_tick_view("mode")[:] = mode
        buffer.string_tick_view("true_room_c")[:] = world.room_c[fleet.string_site]

    def _ohmic_tests(self, terminal, timestamp_us: int) -> np.ndarray:
        """Test the jars of the due sites' floating strings; returns the load step of each string's voltage, V."""
        world, fleet, monitor = self.world, self.world.fleet, self.world.monitor
        sites, self.due = sorted(self.due), set()
        unreachable = monitor.unreachable(timestamp_us)
        voltage = world.buffer.tick_view("true_voltage_v")
        step_v = np.zeros(world.string_count)
        for site in sites:
            strings = [s for s in world.site_strings(site) if world.string_mode[s] == Mode.FLOAT and world.input_up(s)]
            jars = np.flatnonzero(np.isin(fleet.battery_string, strings) & ~unreachable)
            if not len(jars):
                continue
            true_mohm = terminal.resistance_mohm[jars]
            resistance, temperature = monitor.ohmic_test(jars, site, true_mohm, world.bank.temperature_c[jars],
                                                         timestamp_us)
            drop_v = self.test_current_a[jars] * true_mohm * 1e-3  # the load step, this tick
            voltage[jars] -= drop_v
            np.add.at(step_v, fleet.battery_string[jars], drop_v)
            self.add_results(jars, timestamp_us, resistance, temperature, self.test_current_a[jars], true_mohm,
                             OHMIC_TEST_KIND)
            world.emit("ohmic_test", site=site, strings=[fleet.string_ids[s] for s in strings], jars=len(jars))
        return step_v

    def add_results(self, jars, timestamp_us, resistance, temperature, current_a, true_mohm, instrument) -> None:
        world = self.world
        world.buffer.add_ohmic_tests({
            "timestamp_us": np.full(len(jars), timestamp_us), "battery_key": world.battery_key[jars],
            "resistance_mohm": resistance, "temperature_c": temperature, "test_current_a": current_a,
            "true_resistance_mohm": true_mohm, "instrument": np.full(len(jars), instrument)})
