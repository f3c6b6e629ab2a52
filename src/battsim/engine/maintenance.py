"""What technicians do to a site: replace jars, survey impedance with a handheld meter.

A replaced jar is a new block (new id, healthy, full, its own manufacturing spread) in the same slot: the
same place in the rack, wired to the same monitor channel (so its sensor errors stay the slot's). Its id is
the slot's first jar's with ``_R1``, ``_R2``, ... and it gets the next free ``battery_key``; the
``jar_replaced`` event carries what the recording's ``batteries`` table needs (recordings/recorder.py). The
monitor has no ohmic value for it until its next test, and restarts its state-of-health trend at 100 %.

The fleet's id lists are updated in place, so every later event, alarm and API answer names the new jar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from battsim.engine.battery import PROFILE_NAMES
from battsim.engine.fleet import entity_rng
from battsim.engine.monitoring import HANDHELD_KIND

if TYPE_CHECKING:
    from battsim.engine.world import World

JAR_REPLACED = "jar_replaced"
# A handheld impedance meter (e.g. Midtronics Celltron, Hioki BT3554): ±1 % repeatability, a small AC
# injection current, read to 0.01 mΩ.
HANDHELD_NOISE_FRACTION = 0.01
HANDHELD_INJECTION_A = 1.0


def replacement_id(world: World, slot: int) -> str:
    original = world.original_battery_ids[slot]
    world.replacements[slot] = world.replacements.get(slot, 0) + 1
    return f"{original}_R{world.replacements[slot]}"


def replace_jars(world: World, slots: np.ndarray, reason: str) -> list[str]:
    """Put new jars in ``slots``; returns their ids."""
    world.catch_up()
    world.flush()  # readings taken so far belong to the old jars' keys
    fleet, bank, spec = world.fleet, world.bank, world.fleet.spec
    new_ids = []
    for slot in np.atleast_1d(slots):
        slot = int(slot)
        old_id = fleet.battery_ids[slot]
        new_id = replacement_id(world, slot)
        capacity_z, resistance_z = entity_rng(world.seed, new_id, "manufacture").standard_normal(2)
        capacity_spread = float(np.clip(1.0 + spec.capacity_spread_pct / 100.0 * capacity_z, 0.8, 1.2))
        resistance_spread = float(np.clip(1.0 + spec.resistance_spread_pct / 100.0 * resistance_z, 0.7, 1.3))
        model = fleet.models[fleet.battery_model[slot]]
        scale = capacity_spread * model.capacity_ah_c10 / bank.rated_capacity_ah[slot]
        bank.rated_capacity_ah[slot] *= scale
        bank.full_capacity_ah[slot] *= scale
        bank.float_reference_a[slot] *= scale
        bank.new_resistance_mohm[slot] = model.internal_resistance_mohm * resistance_spread
        bank.soh_pct[slot] = 100.0
        bank.resistance_multiplier[slot] = 1.0
        bank.fade_multiplier[slot] = 1.0  # a new jar of the healthy profile, the population's median
        bank.self_discharge_multiplier[slot] = 1.0
        bank.live_cells[slot] = bank.cells[slot]
        bank.depth_of_discharge[slot] = 0.0
        capacity = bank.capacity_ah()[slot]
        bank.available_ah[slot] = capacity * bank.available_fraction[slot]
        bank.bound_ah[slot] = capacity * (1.0 - bank.available_fraction[slot])
        bank.temperature_c[slot] = world.jar_air_c[slot]
        fleet.profile[slot] = 0
        fleet.battery_ids[slot] = new_id
        world.battery_key[slot] = world.next_battery_key
        world.next_battery_key += 1
        monitor = world.monitor
        monitor.held_resistance_mohm[slot] = np.nan
        monitor.baseline_resistance_mohm[slot] = bank.new_resistance_mohm[slot]
        monitor.soh_trend_pct[slot] = 100.0
        if world.scenarios is not None:
            index = world.scenarios.targets.battery_index
            index.pop(old_id, None)
            index[new_id] = slot
        world.emit(JAR_REPLACED, battery=slot, replaces=old_id, reason=reason, battery_key=int(world.battery_key[slot]),
                   position=int(fleet.battery_position[slot]), profile=PROFILE_NAMES[0],
                   capacity_ah=round(float(bank.rated_capacity_ah[slot]), 4),
                   baseline_resistance_mohm=round(float(bank.new_resistance_mohm[slot]), 4))
        new_ids.append(new_id)
    bank.reset_resistance_segments()
    world.buffer.set_battery_keys(world.battery_key)
    world.catch_up()
    return new_ids


def impedance_survey(world: World, jars: np.ndarray) -> None:
    """A technician measures ``jars`` with a handheld meter now: rows of ``ohmic_tests`` (instrument 1); the
    monitor's held values are not changed."""
    world.catch_up()  # the circuit solved at this instant
    jars = np.flatnonzero(jars) if jars.dtype == bool else np.asarray(jars)
    rng = entity_rng(world.seed, "impedance-survey", str(world.now_us()))
    true_mohm = world.terminal.resistance_mohm[jars]
    resistance = np.round(true_mohm * (1.0 + HANDHELD_NOISE_FRACTION * rng.standard_normal(len(jars))), 2)
    temperature = np.round(world.bank.temperature_c[jars] + 0.5 * rng.standard_normal(len(jars)), 1)
    world.monitoring.add_results(jars, world.now_us(), resistance, temperature, np.full(len(jars), HANDHELD_INJECTION_A),
                                 true_mohm, HANDHELD_KIND)
    for site in np.unique(world.fleet.battery_site[jars]):
        world.emit("impedance_survey", site=int(site), jars=int((world.fleet.battery_site[jars] == site).sum()))
