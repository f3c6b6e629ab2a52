"""Maintenance as scenarios: capacity tests of strings, impedance surveys of jars.

A **capacity test** (IEEE 1188 §7: the real measure of state of health) takes a string off its rectifier and
discharges it into a load bank at ``current_c10`` A per Ah of its rated C10 capacity until its voltage
reaches ``end_v_per_cell`` × its cells, then gives it back to its rectifier (boost, then float). The world's
loads are constant-power, so the bank draws the power of that current at the string's nominal 2.0 V/cell
(the current rises a few per cent as the voltage falls). The Ah delivered over the rated capacity is the
string's measured capacity; below ``pass_pct`` the test fails and the jars that fell below
``end_v_per_cell`` - 0.05 V per cell (the weak ones that reach the end first), and at least the lowest, are
replaced (engine/maintenance.py). The test is logged as a ``capacity_test`` event; while it runs the string
is on battery (``outage_start`` / ``outage_end`` with cause ``capacity_test``), and the application ends
itself when the test does. A string not resting on float with its input up is not tested (the event says so).

An **impedance survey** measures the targeted jars with a handheld meter at once (``ohmic_tests`` rows with
instrument 1) and ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from battsim.engine.battery import Mode
from battsim.engine.maintenance import impedance_survey, replace_jars

if TYPE_CHECKING:
    from battsim.engine.world import World
    from battsim.scenarios.catalogue import Params

NOMINAL_V_PER_CELL = 2.0
WEAK_JAR_MARGIN_V_PER_CELL = 0.05
# The longest a test may run: a string at 0.01 C10 empties in about 100 h.
MAX_TEST_S = 7 * 86_400.0


@dataclass
class CapacityTestRun:
    string: int
    started_s: float
    load_w: float
    end_voltage_v: float
    params: Params


def start_capacity_test(world: World, strings: np.ndarray, params) -> None:
    for string in np.atleast_1d(strings):
        string = int(string)
        if world.string_mode[string] != Mode.FLOAT or not world.input_up(string) or string in world.capacity_tests:
            world.emit("capacity_test", string=string, state="skipped",
                       reason=f"the string is {Mode(world.string_mode[string]).name.lower()}, not resting on float")
            world.env.process(_end_application(world, string))
            continue
        first, jars = int(world.string_start[string]), int(world.string_jars[string])
        cells = float(world.bank.cells[first:first + jars].sum())
        run = CapacityTestRun(string, world.env.now, float(world.string_load_w[string]),
                              float(world.string_end_voltage_v[string]), params)
        world.capacity_tests[string] = run
        world.catch_up()
        world.string_load_w[string] = params.current_c10 * world.string_rated_ah[string] * NOMINAL_V_PER_CELL * cells
        world.string_end_voltage_v[string] = params.end_v_per_cell * cells
        world.emit("capacity_test", string=string, state="started", current_c10=params.current_c10,
                   end_v_per_cell=params.end_v_per_cell)
        world.lose_input([string], cause="capacity_test")
        world.env.process(_watch(world, run))


def stop_capacity_test(world: World, strings: np.ndarray, params) -> None:
    """Cleared (or expired) before the string reached its end voltage: the test is abandoned."""
    for string in np.atleast_1d(strings):
        run = world.capacity_tests.get(int(string))
        if run is not None:
            _finish(world, run, state="aborted")


def _watch(world: World, run: CapacityTestRun):
    while run.string in world.capacity_tests:
        if world.string_mode[run.string] != Mode.DISCHARGE or world.env.now - run.started_s >= MAX_TEST_S:
            _finish(world, run, state="completed")
            world.env.process(_end_application(world, run.string))
            return
        yield world.env.timeout(world.interval_s)


def _finish(world: World, run: CapacityTestRun, state: str) -> None:
    string, params = run.string, run.params
    del world.capacity_tests[string]
    world.catch_up()
    first, jars = int(world.string_start[string]), int(world.string_jars[string])
    slots = np.arange(first, first + jars)
    ah = float(world.string_discharged_ah[string])
    capacity_pct = 100.0 * ah / float(world.string_rated_ah[string])
    cells = world.bank.cells[slots]
    voltage_v = world.jar_voltage_v[slots]
    passed = state != "completed" or capacity_pct >= params.pass_pct
    weak = slots[voltage_v < (params.end_v_per_cell - WEAK_JAR_MARGIN_V_PER_CELL) * cells]
    if not passed and not len(weak):
        weak = slots[[int(np.argmin(voltage_v / cells))]]
    world.emit("capacity_test", string=string, state=state, ah_delivered=round(ah, 4),
               capacity_pct=round(capacity_pct, 3), duration_s=round(world.env.now - run.started_s, 3),
               current_c10=params.current_c10, end_v_per_cell=params.end_v_per_cell, pass_pct=params.pass_pct,
               passed=passed, replace=[] if passed else [world.fleet.battery_ids[j] for j in weak])
    world.string_load_w[string] = run.load_w
    world.string_end_voltage_v[string] = run.end_voltage_v
    world.restore_input([string], cause="capacity_test")
    if not passed:
        replace_jars(world, weak, reason="capacity_test_failed")


def _end_application(world: World, string: int):
    yield world.env.timeout(0)
    if world.scenarios is not None:
        world.scenarios.clear(strings=[world.fleet.string_ids[string]], name="capacity_test")


def start_impedance_survey(world: World, jars: np.ndarray, params) -> None:
    impedance_survey(world, np.asarray(jars))
    world.env.process(_end_survey(world, np.asarray(jars)))


def _end_survey(world: World, jars: np.ndarray):
    yield world.env.timeout(0)
    if world.scenarios is not None:
        world.scenarios.clear(batteries=[world.fleet.battery_ids[j] for j in jars], name="impedance_survey")
