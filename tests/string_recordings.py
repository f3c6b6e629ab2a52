"""Recordings of one string with outages and failures at chosen instants, for the series-string tests."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.models import get_model
from battsim.engine.world import DEFAULT_START, World
from battsim.recordings.recorder import Recorder, RunInfo
from battsim.recordings.run_config import RunConfig

HOUR_S = 3600.0
# Stored charge of a full jar per Ah of its rated capacity (the model's C20-over-C10 reserve).
CAPACITY_OVER_C10 = get_model("CSB HX12-120").capacity_over_c10


def record_string(path: Path, interval_s: int, days: float, actions=(), seed: int = 4, prepare=None,
                  preset: str = "single-string"):
    """Record ``preset`` at ``interval_s`` with actions [(virtual_s, callable(world))]; returns a read-only
    connection and the world. ``prepare(world)`` runs before the first tick is taken."""
    fleet = build_fleet(get_preset(preset), seed=seed)
    config = RunConfig(fleet={}, seed=seed, interval_s=interval_s)
    recorder = Recorder(path, fleet, RunInfo(seed, DEFAULT_START, None, interval_s, config))
    world = World(fleet, recorder, seed=seed, interval_s=interval_s)
    if prepare is not None:
        prepare(world)
    for at_s, action in actions:
        world.run_until(at_s)
        action(world)
    world.run_until(days * 86_400)
    world.flush()
    recorder.close()
    return duckdb.connect(str(path), read_only=True), world


def outage(start_s: float, end_s: float):
    """Actions: the string's input lost at ``start_s`` and back at ``end_s``."""
    return [(start_s, lambda w: w.lose_input([0], "test")), (end_s, lambda w: w.restore_input([0], "test"))]


def hours_sql(column: str = "timestamp") -> str:
    return f"(epoch({column}) - epoch(TIMESTAMPTZ '2026-01-01 00:00:00+07')) / 3600.0"


def weaken(jar: int, soh_pct: float):
    """A prepare hook: ``jar`` starts full at ``soh_pct`` (a weak jar among healthy ones)."""
    def prepare(world):
        bank = world.bank
        bank.soh_pct[jar] = soh_pct
        capacity = bank.capacity_ah()
        bank.available_ah[jar] = capacity[jar] * bank.available_fraction[jar]
        bank.bound_ah[jar] = capacity[jar] * (1.0 - bank.available_fraction[jar])
        world.catch_up()
    return prepare


def event_details(con, kind: str) -> list[tuple[float, dict]]:
    import json
    rows = con.execute(f"SELECT {hours_sql()}, detail FROM events WHERE kind = ? ORDER BY timestamp", [kind]).fetchall()
    return [(hours, json.loads(detail)) for hours, detail in rows]


def column_by_tick(con, column: str, where: str = "true") -> np.ndarray:
    """[tick, jar] array of a column."""
    rows = con.execute(f"SELECT {column} FROM reading_samples WHERE {where} ORDER BY timestamp, battery_key").fetchall()
    values = np.array([r[0] for r in rows], dtype=np.float64)
    return values.reshape(-1, 24)
