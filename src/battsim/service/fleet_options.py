"""What `battsim run` and `battsim serve` read alike: the fleet (a preset or a file), its timelines, instants."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.markup import escape

from battsim.engine.fleet import FleetFileError, FleetSpec, build_fleet, get_preset, load_fleet_file
from battsim.scenarios import TimelineError, load_timeline, shipped_timelines
from battsim.service.terminal import fail


def parse_instant(flag: str, text: str, default_zone: ZoneInfo = ZoneInfo("Asia/Bangkok")) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is read in Bangkok time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(flag, f"{text!r} is not an ISO 8601 date-time (e.g. 2026-01-01T00:00+07:00)")
    return moment if moment.tzinfo else moment.replace(tzinfo=default_zone)


def resolve_fleet(preset: str | None, fleet_file: Path | None) -> tuple[FleetSpec, str | None]:
    if preset and fleet_file:
        fail("--preset/--fleet", "give one of them, not both")
    if fleet_file:
        try:
            return load_fleet_file(fleet_file), None
        except FleetFileError as error:
            fail("--fleet", str(error))
    name = preset or "thailand-9x24"
    try:
        return get_preset(name), name
    except FleetFileError as error:
        fail("--preset", str(error))


def load_timelines(names: list[str], spec: FleetSpec, seed: int) -> list:
    """Each --timeline as a checked timeline: a file, or a shipped timeline by name."""
    shipped = shipped_timelines()
    timelines = []
    for name in names:
        path = Path(name)
        if not path.exists() and name.removesuffix(".toml") in shipped:
            path = shipped[name.removesuffix(".toml")]
        elif not path.exists():
            fail("--timeline", f"{name}: no such file (shipped timelines: {', '.join(shipped)})")
        try:
            timelines.append(load_timeline(path, source=name))
        except TimelineError as error:
            fail("--timeline", escape(str(error)))
    if timelines:
        fleet = build_fleet(spec, seed)
        for loaded in timelines:
            try:
                loaded.check(fleet)
            except TimelineError as error:
                fail("--timeline", escape(str(error)))
    return timelines


RANDOM_OUTAGES_HELP = ("Seeded random grid outages at each site's outages_per_year, 30-90 min (the shipped "
                       "grid-outages timeline), unless a --timeline has its own grid_outage entry.")
