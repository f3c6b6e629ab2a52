"""The fleet's own random grid outages, which a default ``battsim run`` and ``battsim serve`` include.

A site's ``outages_per_year`` acts only through a ``[[random]] kind = "grid_outage"`` entry of a timeline
(:mod:`battsim.scenarios.random_events`). So that a plain run shows what a fleet lives through, the CLI adds
the shipped ``grid-outages`` timeline (that entry, 30-90 min outages) to the run's timelines, unless
``--no-random-outages`` is given or one of the run's own timelines already has a ``grid_outage`` entry
(``realistic-year`` has): that one governs, so the outages are never doubled. The outages are seeded per
site, so the same seed gives the same outages.
"""

from __future__ import annotations

from collections.abc import Sequence

from battsim.scenarios.timeline import Timeline, load_timeline, shipped_timelines

GRID_OUTAGES = "grid-outages"


def has_random_outages(timeline: Timeline) -> bool:
    return any(entry.kind == "grid_outage" for _, entry in timeline.randoms)


def with_random_outages(timelines: Sequence[Timeline], enabled: bool = True) -> list[Timeline]:
    """``timelines``, plus the shipped ``grid-outages`` one if ``enabled`` and none of them has a grid_outage entry."""
    if not enabled or any(has_random_outages(timeline) for timeline in timelines):
        return list(timelines)
    return [*timelines, load_timeline(shipped_timelines()[GRID_OUTAGES], source=GRID_OUTAGES)]
