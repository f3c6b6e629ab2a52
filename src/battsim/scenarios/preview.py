"""When a timeline's events will happen on a fleet, without installing anything.

The occurrences come from the timeline module's own expansion
(:meth:`~battsim.scenarios.timeline.ScheduledEvent.occurrences`), from a moment on, exactly as
:meth:`~battsim.scenarios.timeline.Timeline.install` would schedule them there: an occurrence still
running at that moment is included, one already over is not. Each is given in UTC and in the local
time of the sites it acts on (grouped by zone, each with its UTC offset at the start and at the end, so
an occurrence across a DST change shows both). Random entries have no fixed times; they are listed
with the sites they strike and the rate they strike at.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import numpy as np

from battsim.engine.fleet import Fleet
from battsim.scenarios.controller import Targets
from battsim.scenarios.timeline import ScheduledEvent, Timeline

MAX_OCCURRENCES = 500


def _offset(moment: datetime) -> str:
    """``+07:00`` for a moment's UTC offset."""
    minutes = int(moment.utcoffset().total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zones(fleet: Fleet, sites: np.ndarray) -> list[tuple[str, list[str]]]:
    """The time zones of some sites, each with its site ids, in the fleet's site order."""
    zones: dict[str, list[str]] = {}
    for site in sites:
        zones.setdefault(fleet.site(int(site)).timezone, []).append(fleet.site_ids[int(site)])
    return list(zones.items())


def _local(start: datetime, end: datetime | None, zones: list[tuple[str, list[str]]]) -> list[dict]:
    rows = []
    for name, site_ids in zones:
        zone = ZoneInfo(name)
        local_start = start.astimezone(zone)
        local_end = end.astimezone(zone) if end is not None else None
        rows.append({"timezone": name, "sites": site_ids, "start": local_start.isoformat(),
                     "end": local_end.isoformat() if local_end is not None else None,
                     "utc_offset": _offset(local_start),
                     "utc_offset_end": _offset(local_end) if local_end is not None else None})
    return rows


def _end(start: datetime, duration_s: float | None) -> datetime | None:
    """When an occurrence ends: ``duration_s`` of elapsed time, as the clock counts it (aware arithmetic within one
    zone is wall-clock arithmetic, an hour short across a DST change)."""
    return start.astimezone(UTC) + timedelta(seconds=duration_s) if duration_s is not None else None


def _current(event: ScheduledEvent, zone: ZoneInfo, since: datetime, installed: datetime) -> Iterator[datetime]:
    """The event's occurrences that are not over at ``since`` (as installing it at ``installed`` would play them)."""
    for moment in event.occurrences(zone, installed):
        end = _end(moment, event.duration_s)
        if moment >= since or (end is not None and end > since):
            yield moment


def occurrences(timeline: Timeline, fleet: Fleet, since: datetime, count: int = 10,
                installed: datetime | None = None) -> list[dict]:
    """The next ``count`` (at most MAX_OCCURRENCES) occurrences of the timeline's scheduled events from ``since``,
    in order of start; ``installed``: when the timeline was installed (default ``since``; "+3d" counts from it)."""
    count = max(0, min(count, MAX_OCCURRENCES))
    installed = installed or since
    targets, zone = Targets(fleet), timeline.zone
    streams = []
    for number, event in enumerate(timeline.events):
        sites = np.unique(fleet.battery_site[targets.resolve(**event.entry.targets())])
        streams.append((moment, number, event, sites) for moment in _current(event, zone, since, installed))
    rows = []
    for moment, _, event, sites in islice(heapq.merge(*streams, key=lambda item: (item[0], item[1])), count):
        end = _end(moment, event.duration_s)
        rows.append({
            "label": event.label, "scenario": event.entry.scenario, "action": event.entry.action,
            "targets": event.entry.targets() or {"sites": "all"},
            "start": moment.astimezone(UTC).isoformat(),
            "end": end.astimezone(UTC).isoformat() if end is not None else None,
            "duration_s": event.duration_s, "source": timeline.source,
            "local": _local(moment, end, _zones(fleet, sites)),
        })
    return rows


def random_entries(timeline: Timeline, fleet: Fleet) -> list[dict]:
    """The timeline's random processes: what they are, and the sites each runs at."""
    targets = Targets(fleet)
    rows = []
    for label, entry in timeline.randoms:
        sites = np.unique(fleet.battery_site[targets.resolve(**entry.targets())])
        rows.append({"label": label, "source": timeline.source, **entry.model_dump(exclude_none=True),
                     "site_ids": [fleet.site_ids[int(site)] for site in sites]})
    return rows


def preview(timeline: Timeline, fleet: Fleet, since: datetime, count: int = 10) -> dict:
    """The timeline checked against the fleet (TimelineError for unknown ids), its next ``count`` occurrences from
    ``since`` and its random processes; nothing is installed."""
    timeline.check(fleet)
    return {"since": since.astimezone(UTC).isoformat(), "timezone": timeline.timezone,
            "occurrences": occurrences(timeline, fleet, since, count), "random": random_entries(timeline, fleet)}
