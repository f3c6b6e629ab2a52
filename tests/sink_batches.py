"""Batches of readings for the sink tests, from a real simulated fleet (the same a run or a live session feeds)."""

from __future__ import annotations

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import World


class Keep:
    """Keeps what the world hands its sink."""

    def __init__(self):
        self.batches, self.events = [], []

    def readings(self, batch):
        self.batches.append(batch)

    def event(self, event):
        self.events.append(event)


def simulate(ticks: int, preset: str = "single-string", ticks_per_batch: int = 1, interval_s: int = 60):
    """(fleet, batches) of ``ticks`` ticks of a preset's fleet, ``ticks_per_batch`` ticks a batch."""
    fleet = build_fleet(get_preset(preset), 0)
    kept = Keep()
    world = World(fleet, kept, seed=0, interval_s=interval_s, batch_rows=fleet.size * ticks_per_batch)
    world.run_until(ticks * interval_s)
    world.flush()
    return fleet, kept.batches
