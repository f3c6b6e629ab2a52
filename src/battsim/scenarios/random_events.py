"""Random events from a timeline's ``[[random]]`` entries: seeded processes, one per target site.

Each site draws from its own stream (``entity_rng(seed, site_id, purpose)``), so a site's random
outages are the same whatever else is in the fleet, however the run is batched, and however fast
it runs. They act through the scenario controller like any other scenario (source ``random``), so
they appear in ``events`` and in ``scenario_mask`` as ground truth.

- ``grid_outage``: a Poisson process at the site's ``outages_per_year`` (vrla-facts.md: 2-8 a year
  in Thailand, by region), each outage lasting uniformly 30-90 minutes; the next outage is drawn
  once the grid is back.
- ``hvac_fault``: failures with exponentially distributed time between them (mean ``mtbf``) and
  repair times (mean ``mttr``).
- ``battery_failure``: sudden failures from the jars' degradation profiles, by the physics'
  failure model (:mod:`battsim.engine.failures`), hourly, for the jars of the target sites.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from battsim.engine import failures
from battsim.engine.fleet import entity_rng
from battsim.engine.physics import SECONDS_PER_YEAR
from battsim.timeparse import MAX_DURATION_S, parse_duration

if TYPE_CHECKING:
    from battsim.engine.world import World
    from battsim.scenarios.controller import Scenarios
    from battsim.scenarios.timeline import RandomEntry

# Typical figures where the timeline gives none: grid outages last 30-90 min (vrla-facts.md); a
# precision air conditioner fails about once a year and is repaired within a working day.
DEFAULT_OUTAGE_MIN = "30min"
DEFAULT_OUTAGE_MAX = "90min"
DEFAULT_HVAC_MTBF = "365d"
DEFAULT_HVAC_MTTR = "8h"


def start_random_process(world: World, controller: Scenarios, entry: RandomEntry, source: str) -> None:
    """Start ``entry``'s process at each of its sites, each on its own random stream."""
    sites = np.unique(world.fleet.battery_site[controller.targets.resolve(**entry.targets())])
    ordinal = controller.random_streams.get(entry.kind, 0)
    controller.random_streams[entry.kind] = ordinal + 1
    purpose = f"random:{entry.kind}:{ordinal}"
    for site in sites:
        site = int(site)
        site_id = world.fleet.site_ids[site]
        rng = entity_rng(world.seed, site_id, purpose)
        if entry.kind == "grid_outage":
            rate = entry.rate_per_year if entry.rate_per_year is not None else world.fleet.site(site).outages_per_year
            if rate > 0:
                draws = outage_draws(rng, SECONDS_PER_YEAR / rate,
                                     parse_duration(entry.duration_min or DEFAULT_OUTAGE_MIN),
                                     parse_duration(entry.duration_max or DEFAULT_OUTAGE_MAX))
                world.env.process(_grid_outages(world, controller, site_id, draws, source))
        elif entry.kind == "hvac_fault":
            world.env.process(_hvac_faults(
                world, controller, site_id, rng, parse_duration(entry.mtbf or DEFAULT_HVAC_MTBF),
                parse_duration(entry.mttr or DEFAULT_HVAC_MTTR), source,
            ))
    if entry.kind == "battery_failure":
        failures.enable_failures(world, hazard_scale=entry.hazard_scale or 1.0, sites=[int(site) for site in sites])


def outage_draws(rng: np.random.Generator, mean_gap_s: float, shortest_s: float,
                 longest_s: float) -> Iterator[tuple[float, float]]:
    """A site's grid outages, forever: (seconds the grid stays up, seconds it is then down), a Poisson process
    (exponential gaps of mean ``mean_gap_s``) of outages lasting uniformly ``shortest_s`` to ``longest_s``."""
    while True:
        yield rng.exponential(mean_gap_s), rng.uniform(shortest_s, longest_s)


def _grid_outages(world: World, controller: Scenarios, site_id: str, draws: Iterator[tuple[float, float]],
                  source: str):
    """Grid up, then down, as drawn, and again; the next outage is drawn once the grid is back."""
    for up_s, down_s in draws:
        yield world.env.timeout(up_s)
        controller.apply("power_outage", sites=[site_id], duration_s=down_s, source=f"random {source}")
        yield world.env.timeout(down_s)


def _hvac_faults(world: World, controller: Scenarios, site_id: str, rng: np.random.Generator,
                 mtbf_s: float, mttr_s: float, source: str):
    """HVAC runs for an exponential time (mean MTBF), then is down for an exponential repair (mean MTTR, at least
    a minute, at most the longest a scenario may last)."""
    env = world.env
    while True:
        yield env.timeout(rng.exponential(mtbf_s))
        repair_s = min(max(rng.exponential(mttr_s), 60.0), MAX_DURATION_S)
        controller.apply("hvac_failure", sites=[site_id], duration_s=repair_s, source=f"random {source}")
        yield env.timeout(repair_s)
