"""Small shared pieces for tests: making recordings and hashing their content in SQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb

from battsim.engine.fleet import get_preset
from battsim.engine.world import DEFAULT_START
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.schema import reading_sample_columns


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
