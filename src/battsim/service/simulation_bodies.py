"""The bodies of the live simulation's HTTP API: what each request takes and what each answer holds.

Request models validate (a 422 naming the field); answer models document every response in OpenAPI. An
answer model lists the fields the code sets and allows more (``extra="allow"``), and routes return them with
``response_model_exclude_unset``, so a body keeps exactly the keys it had: the original service's endpoints
answer in its shapes (``../shared/reference/original-api.md``), with no key added or dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from battsim.engine.battery import SOH_FLOOR_PCT
from battsim.engine.fleet import PRESETS, FleetSpec, JarSpec, SiteSpec, get_preset
from battsim.scenarios import CATALOGUE
from battsim.scenarios.timeline import EARLIEST_YEAR, LATEST_YEAR, MAX_TIMELINE_BYTES
from battsim.service.limits import shown
from battsim.service.live import parse_backfill
from battsim.timeparse import EXAMPLES, parse_duration

# The fleet the original's {"batteries": [...]} start builds: each battery its own one-jar string in its
# own room (site SITE01, SITE02, ... in the order given, as the original kept conditions per battery), carrying
# the share of a preset 24-jar string's load (8 kW) that one jar carries (~0.25 C).
API_SITE_PREFIX = "SITE"
API_LOAD_KW_PER_JAR = SiteSpec.model_fields["load_kw_per_string"].default / 24
# Virtual start times a live run may have: the timelines' years (scenarios/timeline.py), so every
# timestamp of a run of any length at any speed stays well inside what Python and DuckDB represent.
EARLIEST_START = datetime(EARLIEST_YEAR, 1, 1, tzinfo=UTC)
LATEST_START = datetime(LATEST_YEAR, 12, 31, 23, 59, 59, tzinfo=UTC)
# Ids in a request: as many as the largest fleet preset has jars, with room to spare.
MAX_IDS = 10_000
IdList = list[Annotated[str, Field(max_length=100)]]
# A battery id: printable text (the original took any string), capped like every id in a request.
BATTERY_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"


def known_scenario(name: str) -> str:
    if name not in CATALOGUE:
        raise ValueError(f"unknown scenario {shown(name)!r}; known: {', '.join(CATALOGUE)}")
    return name


def ignored_fields(model: BaseModel, where: str) -> list[str]:
    """Warnings for the fields a lenient (original) body carried that nothing reads."""
    return [f"{where}{name}: not a field here, ignored" for name in sorted(model.model_extra or {})]


def timeline_field(description: str, **options) -> Any:
    return Field(max_length=MAX_TIMELINE_BYTES, description=f"{description} At most {MAX_TIMELINE_BYTES} characters.",
                 **options)


class BatteryConfig(BaseModel):
    # Fields the original did not know are ignored (and reported as warnings), as it ignored them.
    model_config = ConfigDict(extra="allow")
    battery_id: str = Field(pattern=BATTERY_ID_PATTERN, examples=["BAT001"], description="Printable text, 1-100 characters.")
    profile: Literal["healthy", "accelerated", "failing"] = "healthy"
    initial_soh: float = Field(default=100.0, ge=0, le=100,
                               description=f"State of health at the start, %; below {SOH_FLOOR_PCT:g} starts at "
                                           f"{SOH_FLOOR_PCT:g} (a jar's floor).")


class StartRequest(BaseModel):
    """The original's start body (``batteries``, ``interval_seconds``, ``scenario``), or a preset fleet."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"batteries": [{"battery_id": "BAT001", "profile": "healthy", "initial_soh": 95.0},
                       {"battery_id": "BAT002", "profile": "accelerated", "initial_soh": 85.0}],
         "interval_seconds": 5},
        {"preset": "thailand-9x24", "interval_seconds": 1, "speed": 60, "seed": 42, "timeline": "daily-outage"},
    ]})
    batteries: list[BatteryConfig] | None = Field(default=None, min_length=1, max_length=1000)
    preset: str | None = Field(default=None, description=f"A fleet preset: {', '.join(PRESETS)}.")
    interval_seconds: int = Field(default=5, ge=1, le=60, description="Virtual seconds between readings.")
    scenario: str | None = Field(default=None, description="Applied to the whole fleet at start.")
    timeline: str | None = timeline_field("TOML text of a timeline, or a shipped timeline's name.", default=None)
    seed: int = Field(default=0, ge=0, lt=2**63)
    speed: float = Field(default=1.0, gt=0, le=1e6, description="Virtual seconds per wall second.")
    start: AwareDatetime | None = Field(default=None, description=f"Virtual start (default: now), in the years "
                                                                 f"{EARLIEST_YEAR}-{LATEST_YEAR} (UTC).")
    paused: bool = Field(default=False, description="Start paused; resume with POST /simulation/resume.")
    backfill: Annotated[str, Field(max_length=64)] | float | None = Field(
        default=None, examples=["30d"], description="History to simulate first, at batch speed: virtual time starts "
        "this long before now (\"30d\", \"12h\", seconds; at most 366 days), then runs at the speed from now.")

    @field_validator("backfill")
    @classmethod
    def _backfill_duration(cls, value):
        return parse_backfill(value)

    @field_validator("scenario")
    @classmethod
    def _scenario_known(cls, value):
        return value if value is None else known_scenario(value)

    @field_validator("preset")
    @classmethod
    def _preset_known(cls, value):
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {shown(value)!r}; presets: {', '.join(PRESETS)}")
        return value

    @field_validator("start")
    @classmethod
    def _start_in_range(cls, value):
        # Compared as instants (never converted), so a far offset cannot overflow here.
        if value is not None and not EARLIEST_START <= value <= LATEST_START:
            raise ValueError(f"{value.isoformat()} is outside {EARLIEST_START.isoformat()} to {LATEST_START.isoformat()}")
        return value

    @model_validator(mode="after")
    def _start_or_backfill(self):
        if self.backfill and self.start is not None:
            raise ValueError("backfill: give start or backfill, not both (a back-fill starts that long before now)")
        return self

    @model_validator(mode="after")
    def _one_fleet(self):
        if (self.batteries is None) == (self.preset is None):
            raise ValueError("give either batteries (a list of {battery_id, profile, initial_soh}) or preset "
                             f"({', '.join(PRESETS)}), not both")
        return self

    def unique_batteries(self) -> list[BatteryConfig]:
        """The batteries, each id once: a repeated id is the same battery (its first entry), as in the original."""
        first: dict[str, BatteryConfig] = {}
        for battery in self.batteries or []:
            first.setdefault(battery.battery_id, battery)
        return list(first.values())

    def warnings(self) -> list[str]:
        """What the original accepted that we take leniently: unknown fields, repeated ids, a SOH below the floor."""
        found = ignored_fields(self, "")
        seen: set[str] = set()
        for index, battery in enumerate(self.batteries or []):
            found += ignored_fields(battery, f"batteries[{index}].")
            if battery.battery_id in seen:
                found.append(f"batteries[{index}].battery_id: {shown(battery.battery_id)} is listed already; "
                             "this entry is ignored")
            seen.add(battery.battery_id)
            if battery.initial_soh < SOH_FLOOR_PCT:
                found.append(f"batteries[{index}].initial_soh: {battery.initial_soh:g} starts at the "
                             f"{SOH_FLOOR_PCT:g} % floor (a jar with no capacity left has no state of charge)")
        return found

    def fleet(self) -> tuple[FleetSpec, str | None]:
        if self.preset is not None:
            return get_preset(self.preset), self.preset
        sites = [SiteSpec(site_id=f"{API_SITE_PREFIX}{number:02d}", name=f"Room of {b.battery_id}",
                          load_kw_per_string=API_LOAD_KW_PER_JAR,
                          jars=[JarSpec(battery_id=b.battery_id, profile=b.profile,
                                        initial_soh_pct=max(b.initial_soh, SOH_FLOOR_PCT))])
                 for number, b in enumerate(self.unique_batteries(), start=1)]
        return FleetSpec(name="api", description="Batteries listed in the start request, each in its own room",
                         sites=sites), None


class Targets(BaseModel):
    """Which part of the fleet a scenario request is about; none given, or empty lists: the whole fleet."""
    model_config = ConfigDict(extra="allow")
    battery_ids: IdList | None = Field(default=None, max_length=MAX_IDS,
                                       description="Targets; none given, or an empty list: the whole fleet. Unknown ids "
                                                   "are ignored (and named in warnings).")
    site_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    string_ids: IdList | None = Field(default=None, max_length=MAX_IDS)


class ApplyRequest(Targets):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"scenario": "power_outage", "battery_ids": ["BAT001"], "ambient_temp": 28.0},
        {"scenario": "hvac_failure", "site_ids": ["HKT_DC1"], "duration_s": 7200},
    ]})
    scenario: str = Field(description=f"One of: {', '.join(CATALOGUE)}.")
    ambient_temp: float | None = Field(default=None, ge=-10, le=60, description="Hold the battery room at this, °C.")
    params: dict[str, Any] | None = Field(default=None, description="Scenario parameters (GET /scenarios).")
    duration_s: float | str | None = Field(default=None, examples=[7200, "2h"],
                                           description="Ends by itself after this: seconds, or a duration such as "
                                                       f"{EXAMPLES} (at most 100 years); default: until cleared.")

    @field_validator("scenario")
    @classmethod
    def _scenario_known(cls, value):
        return known_scenario(value)

    @field_validator("duration_s")
    @classmethod
    def _duration_seconds(cls, value):
        return value if value is None else parse_duration(value)


class ClearRequest(Targets):
    scenario: str | None = Field(default=None, description="Clear only this scenario.")

    @field_validator("scenario")
    @classmethod
    def _scenario_known(cls, value):
        return value if value is None else known_scenario(value)


class SpeedRequest(BaseModel):
    speed: float = Field(gt=0, le=1e6, description="Virtual seconds per wall second.", examples=[60])


# ------------------------------------------------------------------------------------ answers
class Answer(BaseModel):
    """An answer's documented fields; any other key the code sets passes through as it is."""

    model_config = ConfigDict(extra="allow")


class ActiveScenario(Answer):
    id: int = Field(description="Its id in this simulation, in the order scenarios were applied.")
    name: str = Field(description="The catalogue's scenario name.")
    targets: dict[str, list[str]] = Field(description="The sites, strings and batteries it acts on (the fewest "
                                                      "ids that say so); empty: the whole fleet.")
    jars: int = Field(description="How many jars it acts on.")
    params: dict[str, Any]
    since: str = Field(description="Virtual time it began, ISO 8601 UTC.")
    until: str | None = Field(description="Virtual time it ends by itself; null: until cleared.")
    source: str = Field(description="What applied it: api, the start request, or a timeline and its entry.")


class BackfillStatus(Answer):
    state: Literal["running", "done"]
    requested_s: float
    progress: float = Field(description="Share of the back-fill simulated, 0-1.")
    readings: int


class SimulationStatus(Answer):
    """The original's status fields first, then ours; a slot never started has only the first few."""

    is_running: bool
    batteries_count: int
    interval_seconds: int
    scenario: str | None
    started_at: str | None
    readings_generated: int
    session: str = Field(description="The session's name (`default`: the original's endpoints').")
    is_paused: bool
    recording_id: str | None
    speed: float | None = Field(default=None, description="Virtual seconds per wall second.")
    seed: int | None = None
    preset: str | None = None
    fleet: str | None = None
    sites_count: int | None = None
    strings_count: int | None = None
    sim_start: str | None = None
    sim_time: str | None = Field(default=None, description="Virtual time of the last tick, ISO 8601 UTC.")
    seq: int | None = Field(default=None, description="The last tick's sequence number (its telemetry frame's).")
    ticks: int | None = None
    stopped_at: str | None = None
    recording_path: str | None = None
    active_scenarios: list[ActiveScenario] | None = None
    active_alarms: int | None = None
    timelines: list[str] | None = None
    backfill: BackfillStatus | None = None
    error: str | None = Field(default=None, description="Why the simulation stopped by itself, if it did.")


class StartAnswer(Answer):
    status: Literal["started"]
    message: str
    interval_seconds: int
    recording_id: str
    recording_path: str
    speed: float
    seed: int
    sim_start: str
    warnings: list[str] | None = Field(default=None, description="What a lenient (original) body carried that "
                                                                 "was ignored; only when there is something to say.")


class StopAnswer(Answer):
    status: Literal["stopped"]
    message: str
    recording_id: str | None = None
    recording_path: str | None = None
    readings_generated: int | None = None
    warnings: list[str] | None = None


class ScenarioAnswer(Answer):
    """The answer to apply and to clear (the original's status, message and batteries, then ours)."""

    status: Literal["applied", "cleared"]
    message: str
    batteries: int = Field(description="Jars the scenario was applied to, or cleared on.")
    seq: int | None = None
    sim_time: str | None = None
    active_scenarios: list[ActiveScenario]
    warnings: list[str] | None = None


class Preset(Answer):
    name: str
    description: str
    sites: int
    strings: int
    batteries: int


class CatalogueEntry(Answer):
    scenario: str
    name: str
    description: str
    typical_conditions: dict[str, Any] = Field(description="The original's typical conditions, where it had them.")
    conditions: dict[str, Any]
    scope: str = Field(description="What it acts on as a whole: battery, string or site.")
    parameters: dict[str, Any] = Field(description="Its parameters as JSON Schema properties.")


class AlarmRule(Answer):
    rule: str
    severity: str
    description: str


class ActiveAlarm(Answer):
    rule: str
    battery_id: str | None = Field(description="Null for a string's alarm (on_battery).")
    site_id: str
    string_id: str


class AlarmsAnswer(Answer):
    rules: list[AlarmRule]
    thresholds: dict[str, float] = Field(description="The alarm thresholds in force (AlarmThresholds).")
    active: list[ActiveAlarm]


class Subscriber(Answer):
    id: int
    client: str | None
    filter: dict[str, Any]
    sent: int
    dropped: int
    queued: int
    queued_bytes: int
    connected_at: str


class SubscribersAnswer(Answer):
    subscribers: list[Subscriber]
    disconnected_slow: int
    max_frames: int
    max_bytes: int
    send_timeout_s: float
    lag_limit_s: float
    ping_interval_s: float


class SessionEntry(Answer):
    name: str
    is_running: bool
    batteries_count: int
    recording_id: str | None
    recording_path: str | None
    path: str = Field(description="The prefix of its endpoints.")


class SessionLimits(Answer):
    named_sessions: int
    live_jars: int


class SessionsAnswer(Answer):
    sessions: list[SessionEntry]
    limits: SessionLimits
