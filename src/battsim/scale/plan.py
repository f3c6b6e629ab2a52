"""The shard plan: a fleet cut into parts of whole, contiguous sites, and the parts shared out to workers.

Why the plan ignores the number of workers: a site's readings do not depend on the random draws of any
other site (each has its own streams, engine/fleet.py), but the world advances all its jars together, and
its circuit solver and sub-step length are settled over every string it holds (engine/circuit.py stops
Newton's method when no cell of the world moved more than 0.1 mV; engine/world.py shortens every jar's
sub-step while any string discharges). A site simulated beside other sites therefore agrees with itself
alone only to within those tolerances, not to the last bit. So the parts are fixed by the fleet and
``max_jars`` alone, each part is simulated as its own world, and N workers merely run those same
worlds: any N, including 1, gives bit-identical parts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

from battsim.engine.fleet import FleetLayout, FleetSpec, SiteSpec
from battsim.recordings.schema import MAX_RECORDING_JARS
from battsim.scenarios.timeline import Timeline

MAX_PART_JARS = MAX_RECORDING_JARS  # a part is one recording
# Parts of a few thousand jars keep the vectorised engine efficient (bench/bench_batch.py measures the
# 1,944-jar fleet) while giving two workers many parts to balance.
DEFAULT_PART_JARS = 4_096


def site_jars(site: SiteSpec) -> int:
    return len(site.jars) if site.jars else site.strings * site.jars_per_string


@dataclass(frozen=True)
class Part:
    """Sites ``[site_start, site_stop)`` of the fleet, ``jars`` jars, written to ``file``."""

    index: int
    site_start: int
    site_stop: int
    jars: int

    @property
    def file(self) -> str:
        return f"part-{self.index:03d}.duckdb"


def plan_parts(spec: FleetSpec, max_jars: int = DEFAULT_PART_JARS) -> list[Part]:
    """Cut the fleet's sites, in order, into parts of at most ``max_jars`` jars (a bigger site is a part of its own)."""
    if not 1 <= max_jars <= MAX_PART_JARS:
        raise ValueError(f"max_jars {max_jars} is outside 1-{MAX_PART_JARS}")
    parts, start, jars = [], 0, 0
    for index, site in enumerate(spec.sites):
        count = site_jars(site)
        if count > MAX_PART_JARS:
            raise ValueError(f"sites[{index}] ({site.site_id}) has {count:,} jars; a part holds at most {MAX_PART_JARS:,}")
        if jars and jars + count > max_jars:
            parts.append(Part(len(parts), start, index, jars))
            start, jars = index, 0
        jars += count
    parts.append(Part(len(parts), start, len(spec.sites), jars))
    return parts


def assign(parts: list[Part], workers: int) -> list[list[Part]]:
    """Share the parts out to ``workers`` by jar count, biggest part first to the least loaded worker
    (longest processing time first); each worker's parts in plan order. Workers left without a part are
    dropped."""
    loads = [(0, worker) for worker in range(workers)]
    shares: list[list[Part]] = [[] for _ in range(workers)]
    for part in sorted(parts, key=lambda p: (-p.jars, p.index)):
        load, worker = heapq.heappop(loads)
        shares[worker].append(part)
        heapq.heappush(loads, (load + part.jars, worker))
    return [sorted(share, key=lambda p: p.index) for share in shares if share]


def part_spec(spec: FleetSpec, part: Part) -> FleetSpec:
    """The fleet of one part: its sites, everything else (profile mix, spreads, models) the fleet's."""
    return spec.model_copy(update={"sites": spec.sites[part.site_start:part.site_stop]})


def _kept(value, known: set[str]):
    """A target field narrowed to the ids a part has: None (not given) and "all" stay; a list keeps its
    known ids; the empty result is an empty list."""
    if value is None or value == "all":
        return value
    ids = [value] if isinstance(value, str) else value
    return [item for item in ids if item in known]


def restrict_timeline(timeline: Timeline, fleet: FleetLayout) -> Timeline:
    """``timeline`` with each entry's targets narrowed to the part's sites, strings and jars; an entry
    that named targets and keeps none of them is left out (it acts on other parts)."""
    known = {"sites": set(fleet.site_ids), "strings": set(fleet.string_ids), "batteries": set(fleet.battery_ids)}

    def narrowed(entry):
        given = entry.targets()
        if not given:
            return entry
        kept = {key: _kept(value, known[key]) for key, value in given.items()}
        if all(value == [] for value in kept.values()):
            return None
        return entry.model_copy(update={key: (value if value != [] else None) for key, value in kept.items()})

    events = tuple(replace(event, entry=entry) for event in timeline.events if (entry := narrowed(event.entry)))
    randoms = tuple((label, entry) for label, raw in timeline.randoms if (entry := narrowed(raw)))
    return replace(timeline, events=events, randoms=randoms)
