"""Small shared pieces for tests: making recordings and hashing their content in SQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from battsim.engine.fleet import entity_rng, get_preset
from battsim.engine.physics import SECONDS_PER_YEAR
from battsim.engine.world import DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.schema import reading_sample_columns
from battsim.scenarios.random_events import outage_draws


class CollectingSink:
    """A sink for tests: counts readings, keeps every event, and keeps the batches if asked to."""

    def __init__(self, keep_batches: bool = False):
        self.keep_batches = keep_batches
        self.events, self.batches, self.rows = [], [], 0

    def readings(self, batch):
        self.rows += batch.rows
        if self.keep_batches:
            self.batches.append(batch)

    def event(self, event):
        self.events.append(event)

    def kinds(self, prefix: str = "") -> list[str]:
        return [e.kind for e in self.events if e.kind.startswith(prefix)]


def make_recording(path: Path, preset: str = "single-string", days: float = 1.0, interval_s: int = 60,
                   seed: int = 1, **options):
    run = BatchRun(fleet=get_preset(preset), out=path, seed=seed, start=DEFAULT_START,
                   end=DEFAULT_START + timedelta(days=days), interval_s=interval_s, preset=preset, **options)
    return record_run(run)


def content_hash(path: Path) -> int:
    """A hash over every column of every stored reading, independent of row order on disk."""
    columns = ", ".join(f'"{name}"' for name, _ in reading_sample_columns())
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT sum(hash({columns})::HUGEINT) FROM reading_samples").fetchone()[0]


def regional_draws(site, seed: int, years: float) -> list[tuple[float, float]]:
    """A site's random grid outages at its region's rate (the first [[random]] grid_outage entry of a run, as the
    default grid-outages timeline is) for ``years``: (start, duration), seconds from the run's start."""
    rng = entity_rng(seed, site.site_id, "random:grid_outage:0")
    draws = outage_draws(rng, SECONDS_PER_YEAR / site.outages_per_year, 30 * 60, 90 * 60)
    outages, now_s = [], 0.0
    for up_s, down_s in draws:
        now_s += up_s
        if now_s >= years * SECONDS_PER_YEAR:
            return outages
        outages.append((now_s, down_s))
        now_s += down_s
