"""battsim from Python: simulate a fleet and read the recording back, in one call.

    import battsim
    rec = battsim.simulate(preset="single-string", days=1, timeline="daily-outage", seed=7)
    rec.readings().collect()            # polars, one row per jar per tick
    rec.sql("SELECT kind, count(*) FROM events GROUP BY ALL")

This is ``battsim run`` without the command line: the same fleet, timeline and seed give the same
readings as the CLI. With ``out=None`` the recording lives in memory (an in-memory DuckDB database that
is gone when the :class:`~battsim.recordings.Recording` is closed); give ``out`` to keep a file.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from battsim.engine.fleet import FleetSpec, get_preset, load_fleet_file
from battsim.engine.world import DEFAULT_BATCH_ROWS, DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.recording import Recording, open_recording
from battsim.scenarios.default_outages import with_random_outages
from battsim.scenarios.timeline import Timeline, load_timeline

__all__ = ["Recording", "open_recording", "simulate"]

DEFAULT_PRESET = "thailand-9x24"
DEFAULT_DAYS = 7.0
_BANGKOK = ZoneInfo("Asia/Bangkok")


def _instant(name: str, value: str | datetime) -> datetime:
    """An ISO 8601 date-time (or a datetime); without an offset it is Bangkok time, as on the CLI."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not an ISO 8601 date-time (e.g. 2026-01-01T00:00+07:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=_BANGKOK)


def _fleet(preset: str | None, fleet: str | Path | FleetSpec | None) -> tuple[FleetSpec, str | None]:
    if preset is not None and fleet is not None:
        raise ValueError("preset/fleet: give one of them, not both")
    if isinstance(fleet, FleetSpec):
        return fleet, None
    if fleet is not None:
        return load_fleet_file(Path(fleet)), None
    name = preset or DEFAULT_PRESET
    return get_preset(name), name


def _timelines(timeline: str | Path | Timeline | list | None) -> list[Timeline]:
    if timeline is None:
        return []
    items = timeline if isinstance(timeline, list | tuple) else [timeline]
    return [item if isinstance(item, Timeline) else load_timeline(item) for item in items]


def simulate(preset: str | None = None, fleet: str | Path | FleetSpec | None = None, *,
             days: float | None = None, until: str | datetime | None = None,
             start: str | datetime = DEFAULT_START, seed: int = 0, interval_s: int = 60,
             timeline: str | Path | Timeline | list | None = None, out: str | Path | None = None,
             overwrite: bool = False, alarms: bool = True, random_outages: bool = True,
             batch_rows: int = DEFAULT_BATCH_ROWS) -> Recording:
    """Simulate a fleet as fast as possible and return its recording (open; close it or use ``with``).

    ``preset`` (default ``thailand-9x24``) or ``fleet`` (a TOML file or a FleetSpec); ``days`` (default 7)
    or ``until``; ``timeline`` a shipped name (``daily-outage``), a file, TOML text, or a list of them.
    ``random_outages`` adds the fleet's seeded random grid outages as ``battsim run`` does by default.
    Bad arguments raise ValueError naming the argument (or the library's own error naming the field).
    """
    spec, preset_name = _fleet(preset, fleet)
    begin = _instant("start", start)
    if days is not None and until is not None:
        raise ValueError("days/until: give one of them, not both")
    if until is not None:
        end = _instant("until", until)
        if end <= begin:
            raise ValueError(f"until: {end.isoformat()} is not after the start {begin.isoformat()}")
    else:
        days = DEFAULT_DAYS if days is None else days
        if not 0 < days <= 36_525:
            raise ValueError(f"days: {days} must be more than 0 and at most 36525 (100 years)")
        end = begin + timedelta(days=days)
    if not 1 <= interval_s <= 3600:
        raise ValueError(f"interval_s: {interval_s} is outside 1-3600 seconds")
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed: {seed} must be between 0 and 2^63-1")
    timelines = with_random_outages(_timelines(timeline), random_outages)

    def run(path: Path, replace: bool) -> None:
        record_run(BatchRun(fleet=spec, out=path, seed=seed, start=begin, end=end, interval_s=interval_s,
                            preset=preset_name, overwrite=replace, batch_rows=batch_rows, timelines=timelines,
                            alarms=alarms))

    if out is not None:
        run(Path(out), overwrite)
        return open_recording(out)
    # The recorder writes a file (its batches are transactions on disk); copy it into memory and drop it.
    with tempfile.TemporaryDirectory(prefix="battsim-simulate-") as directory:
        staged = Path(directory) / "run.duckdb"
        run(staged, False)
        connection = duckdb.connect(":memory:")
        connection.execute("ATTACH " + _sql_string(str(staged)) + " AS staged (READ_ONLY)")
        connection.execute("COPY FROM DATABASE staged TO memory")
        connection.execute("DETACH staged")
    return Recording.in_memory(connection)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
