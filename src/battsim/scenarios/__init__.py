"""What can happen to the world: the scenario catalogue, timelines of scheduled and random events.

    from battsim.scenarios import Scenarios, CATALOGUE, load_timeline

    controller = Scenarios(world)                       # one per world
    controller.apply("power_outage", sites=["BKK_DC1"], duration_s=7200)
    load_timeline("daily-outage.toml").install(world, controller)
"""

from battsim.scenarios.catalogue import CATALOGUE, SCENARIO_NAMES, ScenarioSpec, Scope
from battsim.scenarios.controller import ScenarioError, Scenarios, Targets
from battsim.scenarios.timeline import Timeline, TimelineError, load_timeline, shipped_timelines

__all__ = [
    "CATALOGUE", "SCENARIO_NAMES", "ScenarioError", "ScenarioSpec", "Scenarios", "Scope", "Targets", "Timeline",
    "TimelineError", "load_timeline", "shipped_timelines",
]
