"""``runs.config``: what a run was asked for, one documented shape for batch and live runs.

    {"fleet": {...}, "seed": 1, "start": "2026-01-01T00:00:00+07:00", "end": "...", "interval_s": 60,
     "preset": "thailand-full", "timelines": [{"source": "grid-outages.toml", "toml": "..."}], "alarms": true}
                                                                          # battsim run, battsim.simulate
    {"mode": "live", "fleet": {...}, "seed": 0, "interval_s": 1, "speed": 60.0, "preset": "thailand-9x24",
     "scenario": null, "timeline": null, "backfill_s": 0.0}                               # battsim serve

A part of a shard set (``battsim run --workers``) adds ``shard``: its index, the number of parts, the part size
and its sites. The fleet is the :class:`~battsim.engine.fleet.FleetSpec` as JSON, so a run can be made again from
its recording alone. A batch run writes no ``mode`` (``batch`` is the default), so its config, and with it a
recording's digest (``battsim hash``, the pytest plugin's golden files), is what it was before this model existed.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TimelineText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="Its file, shipped name, or what installed it.")
    toml: str = Field(description="Its TOML text, as installed.")


class ShardPlace(BaseModel):
    """Where a part of a shard set sits in the whole run."""

    model_config = ConfigDict(extra="forbid")
    part: int = Field(ge=0)
    parts: int = Field(ge=1)
    max_part_jars: int = Field(ge=1)
    sites: tuple[int, int] = Field(description="The part's sites: [first, last + 1) in the fleet's order.")


class RunConfig(BaseModel):
    """What a run was asked for; the fields of the other mode are absent (not null) in the stored JSON."""

    model_config = ConfigDict(extra="forbid")
    # In the order batch runs have always written them: a batch config is the same text, so the same digest.
    mode: Literal["batch", "live"] = "batch"
    fleet: dict[str, Any] = Field(description="The FleetSpec, as JSON.")
    seed: int
    start: str | None = Field(default=None, description="Batch: the virtual start, ISO 8601.")
    end: str | None = Field(default=None, description="Batch: the virtual end, ISO 8601.")
    interval_s: int
    preset: str | None = None
    timelines: list[TimelineText] = Field(default_factory=list, description="Installed in order; they merge.")
    alarms: bool | None = Field(default=None, description="Batch: whether the alarm rules were evaluated.")
    shard: ShardPlace | None = None
    speed: float | None = Field(default=None, description="Live: virtual seconds per wall second at the start.")
    scenario: str | None = Field(default=None, description="Live: applied to the whole fleet at the start.")
    timeline: str | None = Field(default=None, description="Live: the start request's timeline, text or name.")
    backfill_s: float | None = Field(default=None, description="Live: history simulated before now, seconds.")

    def as_json(self) -> dict[str, Any]:
        """What runs.config stores: the fields this run set, no others."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def read(cls, stored: str | dict[str, Any]) -> RunConfig:
        """``runs.config`` as stored (JSON text or parsed); a ValidationError names a field it cannot read."""
        return cls.model_validate(json.loads(stored) if isinstance(stored, str) else stored)
