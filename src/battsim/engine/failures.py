"""Sudden failures of jars: their hazards per degradation profile, and what each does to the physics.

A failure is a discrete event, so it is a SimPy process (:func:`failure_process`): once an hour of
virtual time it draws, for every jar and every failure mode, whether the jar failed in that hour,
from each site's own random stream. Hazards are yearly rates at 25 °C for a new jar of each
profile; they rise with temperature like ageing does (Arrhenius, halving life per 10 K) and with
the capacity the jar has already lost. A failure changes causes in the
:class:`~battsim.engine.battery.BatteryBank` (resistance, float current, live cells, state of
health), and the readings follow from the physics: nothing writes a reading directly.

The scenario layer enables it with ``world.env.process(failure_process(world))`` (or
:func:`enable_failures`), optionally scaling the hazards.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from battsim.engine import physics
from battsim.engine.battery import BatteryBank
from battsim.engine.fleet import entity_rng


class Failure(IntEnum):
    GRID_CORROSION = 0
    DRY_OUT = 1
    SULFATION = 2
    INTERNAL_SHORT = 3
    THERMAL_RUNAWAY = 4


FAILURE_NAMES = tuple(failure.name.lower() for failure in Failure)

# Yearly hazard of each sudden failure at 25 °C for a new jar, by profile (rows healthy,
# accelerated, failing; columns in Failure order). A healthy fleet replaces about 0.5-1 % of jars
# a year before end of life (field surveys of telecom/UPS VRLA, e.g. the Bellcore/Telcordia VRLA
# studies); an accelerated batch several times that, a failing batch (bad lot, poor site) tens of
# percent. Grid corrosion and dry-out dominate, internal shorts and thermal runaway are rare.
HAZARD_PER_YEAR = np.array([
    [0.0020, 0.0020, 0.0010, 0.0010, 0.0001],
    [0.0100, 0.0100, 0.0050, 0.0040, 0.0005],
    [0.0500, 0.0500, 0.0300, 0.0200, 0.0030],
])
# Hazards grow with the capacity already lost: × (1 + 4 · lost / 20 points), 5 × at end of life.
HAZARD_RISE_AT_END_OF_LIFE = 4.0
CHECK_EVERY_S = 3600.0

def apply_failure(bank: BatteryBank, failure: Failure, jars) -> None:
    """Change the physics of ``jars`` as ``failure`` does."""
    if failure == Failure.GRID_CORROSION:
        bank.corrode_grid(jars)
    elif failure == Failure.DRY_OUT:
        bank.dry_out(jars)
    elif failure == Failure.SULFATION:
        bank.sulfate(jars)
    elif failure == Failure.INTERNAL_SHORT:
        bank.short_cell(jars)
    else:
        # A jar cannot run away alone in a series string: it takes no more than the string's one current.
        # What fails is its string, dried out to the end stage as one batch of one age on one charger
        # (docs/physics.md "Runaway in a string"); the jar drawn is the one whose failure is recorded.
        bank.start_thermal_runaway(np.isin(bank.jar_string, bank.jar_string[jars]))


def hourly_failure_probability(bank: BatteryBank, dt_s: float, hazard_scale: float = 1.0) -> np.ndarray:
    """Probability that each jar [jar, failure] fails by each mode within ``dt_s``."""
    lost = np.clip((100.0 - bank.soh_pct) / (100.0 - physics.END_OF_LIFE_SOH_PCT), 0.0, None)
    rate_per_year = (HAZARD_PER_YEAR[bank.profile] * hazard_scale
                     * (physics.arrhenius_factor(bank.temperature_c) * (1.0 + HAZARD_RISE_AT_END_OF_LIFE * lost))[:, None])
    return -np.expm1(-rate_per_year * dt_s / physics.SECONDS_PER_YEAR)


def failure_process(world, hazard_scale: float = 1.0, check_every_s: float = CHECK_EVERY_S,
                    sites: list[int] | None = None):
    """Every hour, each jar (of ``sites``, default all) may fail by each mode; at most once per mode.

    Emits ``battery_failure`` events (failure name, state of health and temperature at the time),
    which are the ground truth of the failure in the recording.
    """
    fleet, bank = world.fleet, world.bank
    sites = range(len(fleet.site_ids)) if sites is None else sites
    rngs = [entity_rng(world.seed, fleet.site_ids[site], "failures") for site in sites]
    all_site_slices = fleet.site_slices()
    site_slices = [all_site_slices[site] for site in sites]
    # Jars outside ``sites`` count as already failed, so they never draw a failure.
    failed = np.ones((fleet.size, len(Failure)), dtype=bool)
    for jars in site_slices:
        failed[jars] = False
    draws = np.ones((fleet.size, len(Failure)))
    while True:
        yield world.env.timeout(check_every_s)
        for jars, rng in zip(site_slices, rngs):
            draws[jars] = rng.random((jars.stop - jars.start, len(Failure)))
        hits = (draws < hourly_failure_probability(bank, check_every_s, hazard_scale)) & ~failed
        if not hits.any():
            continue
        failed |= hits
        for jar, failure in zip(*np.nonzero(hits)):
            fail_jars(world, Failure(failure), [int(jar)])


def fail_jars(world, failure: Failure | str, jars) -> None:
    """Make ``jars`` (fleet indices) fail by ``failure`` now, with a ``battery_failure`` event each:
    what the hourly draw does, and what a scenario timeline calls to fail a chosen jar at a chosen time."""
    if isinstance(failure, str):
        if failure not in FAILURE_NAMES:
            raise ValueError(f"failure must be one of {', '.join(FAILURE_NAMES)}, not {failure!r}")
        failure = Failure(FAILURE_NAMES.index(failure))
    bank = world.bank
    world.catch_up()  # the physics up to this instant ran without the failure
    for jar in jars:
        apply_failure(bank, failure, np.array([jar]))
        world.emit("battery_failure", battery=int(jar), failure=FAILURE_NAMES[failure],
                   soh_pct=round(float(bank.soh_pct[jar]), 2), temperature_c=round(float(bank.temperature_c[jar]), 2))


def enable_failures(world, hazard_scale: float = 1.0, sites: list[int] | None = None) -> None:
    """Start sudden failures in ``world`` at ``sites`` (default all); ``hazard_scale`` multiplies
    every hazard, e.g. 100 for a demo."""
    world.env.process(failure_process(world, hazard_scale, sites=sites))
