"""The live simulation over HTTP and WebSocket: start, stop, status, speed, pause and resume; the scenario catalogue,
applying and clearing scenarios; the alarms; the telemetry WebSocket. The original service's endpoints among them
keep its request and response shapes (``../shared/reference/original-api.md``) and address the default slot.

Requests are validated here (422 naming the field, 404 naming unknown ids, 409 for a request the simulation's
state does not allow), then handed to :mod:`battsim.service.live` (``app.state.sessions``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, WebSocket
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.requests import HTTPConnection

from battsim.engine.alarms import RULES, AlarmThresholds
from battsim.engine.battery import SOH_FLOOR_PCT
from battsim.engine.fleet import PRESETS, FleetSpec, JarSpec, SiteSpec, get_preset
from battsim.scenarios import CATALOGUE, ScenarioError, TimelineError
from battsim.scenarios.timeline import EARLIEST_YEAR, LATEST_YEAR, MAX_TIMELINE_BYTES
from battsim.service.broadcast import ReadingFilter
from battsim.service.limits import brief, shown
from battsim.service.live import (
    DEFAULT_SLOT,
    AlreadyRunning,
    LiveConfig,
    NotRunning,
    RecordingFailed,
    SessionLimit,
    Sessions,
    Slot,
    idle_status,
    parse_backfill,
)
from battsim.service.original_api import API, ORIGINAL_TYPICAL_CONDITIONS, ambient_temp_onto
from battsim.timeparse import MAX_DURATION_S

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


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"scenario": "power_outage", "battery_ids": ["BAT001"], "ambient_temp": 28.0},
        {"scenario": "hvac_failure", "site_ids": ["HKT_DC1"], "duration_s": 7200},
    ]})
    scenario: str = Field(description=f"One of: {', '.join(CATALOGUE)}.")
    battery_ids: IdList | None = Field(default=None, max_length=MAX_IDS,
                                       description="Targets; none given, or an empty list: the whole fleet. Unknown ids "
                                                   "are ignored (and named in warnings).")
    site_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    string_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    ambient_temp: float | None = Field(default=None, ge=-10, le=60, description="Hold the battery room at this, °C.")
    params: dict[str, Any] | None = Field(default=None, description="Scenario parameters (GET /scenarios).")
    duration_s: float | None = Field(default=None, gt=0, le=MAX_DURATION_S,
                                     description="Ends by itself after this (seconds, at most 100 years); "
                                                 "default: until cleared.")

    @field_validator("scenario")
    @classmethod
    def _scenario_known(cls, value):
        return known_scenario(value)


class ClearRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    battery_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    site_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    string_ids: IdList | None = Field(default=None, max_length=MAX_IDS)
    scenario: str | None = Field(default=None, description="Clear only this scenario.")

    @field_validator("scenario")
    @classmethod
    def _scenario_known(cls, value):
        return value if value is None else known_scenario(value)


class SpeedRequest(BaseModel):
    speed: float = Field(gt=0, le=1e6, description="Virtual seconds per wall second.", examples=[60])


def invalid(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, naming the field."""
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": brief(message), "type": "value_error"}])


def warned(warnings: list[str]) -> dict:
    """The ``warnings`` key of a lenient answer, only when there is something to say."""
    return {"warnings": warnings} if warnings else {}


def sessions_of(connection: HTTPConnection) -> Sessions:
    return connection.app.state.sessions


LiveSessions = Annotated[Sessions, Depends(sessions_of)]
SESSION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


def named_session(name: Annotated[str, Path(pattern=SESSION_NAME_PATTERN, description="The session's name: "
                                                 "1-40 letters, digits, _ or -; `default` is the default session.")]) -> str:
    """Declares and checks the ``{name}`` of /api/v1/sessions/{name}/... (a 422 naming it when it is not a name)."""
    return name


def slot_of(connection: HTTPConnection) -> str:
    """The session a request addresses: ``{name}`` under /api/v1/sessions/ (checked by :func:`named_session`),
    else the default one."""
    return connection.path_params.get("name", DEFAULT_SLOT)


SlotName = Annotated[str, Depends(slot_of)]
router = APIRouter()  # what no session owns: presets, the scenario catalogue, the list of sessions
# The same endpoints for the default session (under /api/v1, the original's paths) and for each named one
# (under /api/v1/sessions/{name}): app.py includes this router at both prefixes.
session_router = APIRouter()


def found_slot(sessions: Sessions, slot: str) -> Slot:
    """A slot to read; 404 for a named one no simulation was ever started in."""
    found = sessions.find(slot)
    if found is None:
        raise HTTPException(404, detail=f"no session named {shown(slot)!r}; start one with "
                                        f"POST /api/v1/sessions/{slot}/simulation/start")
    return found


def running(sessions: Sessions, slot: str, status_code: int = 409):
    """The slot's running simulation; else ``status_code`` (409 on ours, 400 on the original's endpoints)."""
    try:
        return sessions.running(slot)
    except NotRunning as error:
        raise HTTPException(status_code, detail=str(error)) from None


def known_battery_ids(session, battery_ids: list[str] | None) -> tuple[list[str] | None, list[str]]:
    """``battery_ids`` without the ids this fleet does not have (the original ignored them), and a warning
    naming those; an empty list means the whole fleet, as in the original."""
    if not battery_ids:
        return None, []
    known = set(session.fleet.battery_ids)
    kept = [battery_id for battery_id in battery_ids if battery_id in known]
    unknown = sorted(set(battery_ids) - known)
    if not unknown:
        return kept, []
    sample = ", ".join(session.fleet.battery_ids[:5]) + (", ..." if session.fleet.size > 5 else "")
    named = ", ".join(shown(battery_id) for battery_id in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
    return kept, [f"battery_ids: unknown {named} ignored (this fleet has e.g. {sample})"]


def check_ids(session, site_ids, string_ids) -> None:
    fleet = session.fleet
    for name, given, known in (("site_ids", site_ids, fleet.site_ids), ("string_ids", string_ids, fleet.string_ids)):
        unknown = sorted(set(given or ()) - set(known))
        if unknown:
            sample = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
            named = ", ".join(shown(battery_id) for battery_id in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise HTTPException(404, detail=f"{name}: unknown {named} (this fleet has e.g. {sample})")


@router.get(f"{API}/presets", summary="Fleet presets")
async def presets():
    return [{"name": name, "description": spec.description, "sites": len(spec.sites),
             "strings": sum(site.strings for site in spec.sites),
             "batteries": sum(site.strings * site.jars_per_string for site in spec.sites)}
            for name, spec in PRESETS.items()]

# ------------------------------------------------------------------------------------ simulation
@session_router.post("/simulation/start", summary="Start a live simulation",
          responses={400: {"description": "A simulation is already running"}})
async def start(request: StartRequest, sessions: LiveSessions, slot: SlotName):
    fleet, preset_name = request.fleet()
    config = LiveConfig(fleet=fleet, preset=preset_name, interval_s=request.interval_seconds, seed=request.seed,
                        speed=request.speed, start=request.start, scenario=request.scenario,
                        timeline=request.timeline, paused=request.paused, backfill_s=request.backfill or 0.0)
    try:
        session = await sessions.start(config, slot)
    except AlreadyRunning as error:
        raise HTTPException(400, detail=str(error)) from None
    except SessionLimit as error:
        raise HTTPException(429, detail=str(error)) from None
    except TimelineError as error:
        raise invalid("timeline", str(error)) from None
    except ScenarioError as error:
        raise invalid("scenario", str(error)) from None
    except RecordingFailed as error:  # e.g. the disk is full: nothing was left behind
        raise HTTPException(507, detail=str(error)) from None
    return {"status": "started", "message": f"Simulation started for {session.fleet.size} batteries",
            "interval_seconds": request.interval_seconds, "recording_id": session.recorder.run_id,
            "recording_path": str(session.recording_path), "speed": request.speed, "seed": request.seed,
            "sim_start": session.status()["sim_start"], **warned(request.warnings())}


@session_router.post("/simulation/stop", summary="Stop the simulation; its recording is marked complete")
async def stop(sessions: LiveSessions, slot: SlotName):
    try:
        session = await sessions.stop(slot)
    except NotRunning:  # the original answered 200: a defensive stop before a start must not fail
        return {"status": "stopped", "message": "Simulation stopped successfully",
                "warnings": ["no simulation was running"]}
    return {"status": "stopped", "message": "Simulation stopped successfully",
            "recording_id": session.recorder.run_id, "recording_path": str(session.recording_path),
            "readings_generated": session.readings_generated}


@session_router.get("/simulation/status", summary="Simulation status")
async def status(sessions: LiveSessions, slot: SlotName):
    session = found_slot(sessions, slot).session
    return session.status() if session is not None else idle_status(slot)


@session_router.post("/simulation/speed", summary="Change the speed while running")
async def set_speed(request: SpeedRequest, sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.set_speed(request.speed)
    return session.status()


@session_router.post("/simulation/pause", summary="Pause virtual time")
async def pause(sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.pause()
    return session.status()


@session_router.post("/simulation/resume", summary="Resume virtual time")
async def resume(sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.resume()
    return session.status()

# ------------------------------------------------------------------------------------ scenarios
@router.get(f"{API}/scenarios", summary="The scenario catalogue")
async def scenarios():
    return [{"scenario": spec.name, "name": spec.title, "description": spec.description,
             "typical_conditions": ORIGINAL_TYPICAL_CONDITIONS.get(spec.name, {}),
             "conditions": spec.typical_conditions, "scope": spec.scope.value,
             "parameters": spec.params.model_json_schema().get("properties", {})}
            for spec in CATALOGUE.values()]


@session_router.get("/scenarios/active", summary="Scenarios acting now")
async def active_scenarios(sessions: LiveSessions, slot: SlotName):
    return running(sessions, slot).scenarios.active()


@session_router.post("/scenarios/apply", summary="Apply a scenario to batteries, strings or sites",
          responses={404: {"description": "Unknown string or site ids"},
                     400: {"description": "No simulation is running"}})
async def apply(request: ApplyRequest, sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot, 400)
    check_ids(session, request.site_ids, request.string_ids)
    battery_ids, warnings = known_battery_ids(session, request.battery_ids)
    warnings = ignored_fields(request, "") + warnings
    spec = CATALOGUE[request.scenario]
    params, hold_room = ambient_temp_onto(spec, dict(request.params or {}), request.ambient_temp)
    targets = {"batteries": battery_ids, "sites": request.site_ids, "strings": request.string_ids}
    try:
        count = session.scenarios.apply(request.scenario, params=params or None, duration_s=request.duration_s,
                                        source="api", **targets)
        if hold_room is not None:
            session.scenarios.apply("high_temperature", params={"ambient_c": hold_room},
                                    duration_s=request.duration_s, source="api", **targets)
    except ScenarioError as error:
        raise invalid("params", str(error)) from None
    session.wake()
    message = f"Scenario '{request.scenario}' applied to {count} batteries"
    if hold_room is not None:
        message += f"; battery room held at {hold_room:g} °C (high_temperature)"
    return {"status": "applied", "message": message, "batteries": count, "seq": session.status()["seq"],
            "sim_time": session.sim_now.astimezone(UTC).isoformat(),
            "active_scenarios": session.scenarios.active(), **warned(warnings)}


@session_router.post("/scenarios/clear", summary="Clear scenarios (all, or on the given batteries)",
          openapi_extra={"requestBody": {"required": False, "content": {"application/json": {
              # Inline: the body is read by hand, so FastAPI never adds ClearRequest to components/schemas.
              "schema": {"anyOf": [ClearRequest.model_json_schema(),
                                   {"type": "array", "items": {"type": "string"}}]},
              "examples": {"ids": {"value": {"battery_ids": ["BAT001"]}}, "bare list": {"value": ["BAT001"]}},
          }}}})
async def clear(request: Request, sessions: LiveSessions, slot: SlotName):
    body = await request.body()
    try:
        data = json.loads(body) if body.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:  # bytes that are not UTF-8 are not JSON either
        raise invalid("(body)", f"not valid JSON: {error}") from None
    if isinstance(data, list):
        data = {"battery_ids": data}
    if data is not None and not isinstance(data, dict):
        raise invalid("(body)", "give {\"battery_ids\": [...]}, a list of battery ids, or no body")
    try:
        chosen = ClearRequest.model_validate(data or {})
    except ValueError as error:
        raise HTTPException(422, detail=json.loads(error.json(include_url=False))) from None
    warnings = ignored_fields(chosen, "")
    found = sessions.find(slot)
    session = found.running if found is not None else None
    if session is None:  # the original answered 200: nothing to clear
        return {"status": "cleared", "message": "Scenarios cleared for 0 batteries", "batteries": 0,
                "active_scenarios": [], "warnings": [*warnings, "no simulation is running"]}
    check_ids(session, chosen.site_ids, chosen.string_ids)
    battery_ids, unknown = known_battery_ids(session, chosen.battery_ids)
    everywhere = battery_ids is None and chosen.site_ids is None and chosen.string_ids is None
    count = session.scenarios.clear(batteries=battery_ids, sites=chosen.site_ids,
                                    strings=chosen.string_ids, name=chosen.scenario)
    if everywhere and chosen.scenario is None:
        session.scenario = None  # as the original's status said after clearing every battery
    session.wake()
    return {"status": "cleared", "message": f"Scenarios cleared for {count} batteries", "batteries": count,
            "active_scenarios": session.scenarios.active(), **warned(warnings + unknown)}

# ------------------------------------------------------------------------------------ alarms
@session_router.get("/alarms", summary="Alarm rules and the alarms raised now")
async def alarms(sessions: LiveSessions, slot: SlotName):
    session = found_slot(sessions, slot).running
    active = []
    if session is not None:
        fleet = session.fleet
        per_string = {r.name for r in RULES if r.per_string}  # on_battery names its string, not a jar
        active = [{"rule": rule, "battery_id": None if rule in per_string else fleet.battery_ids[jar],
                   "site_id": fleet.site_ids[fleet.battery_site[jar]],
                   "string_id": fleet.string_ids[fleet.battery_string[jar]]}
                  for rule, jar in session.alarms.active_alarms()]
    return {"rules": [{"rule": r.name, "severity": r.severity, "description": r.description} for r in RULES],
            "thresholds": AlarmThresholds().model_dump(), "active": active}

# ------------------------------------------------------------------------------------ WebSocket
@session_router.get("/ws/subscribers", summary="WebSocket subscribers: sent, dropped, queued")
async def subscribers(sessions: LiveSessions, slot: SlotName):
    return found_slot(sessions, slot).broadcaster.stats()


@session_router.websocket("/ws/telemetry")
async def telemetry(websocket: WebSocket, sessions: LiveSessions, slot: SlotName):
    """Telemetry frames, one per tick; alert, status, dropped and ping messages.

    Query parameters ``battery_id``, ``site_id``, ``string_id`` (repeatable or comma-separated)
    keep only those readings and alerts.
    """
    query = websocket.query_params
    def ids(name: str) -> frozenset[str]:
        return frozenset(part for value in query.getlist(name) for part in value.split(",") if part)
    reading_filter = ReadingFilter(ids("battery_id"), ids("site_id"), ids("string_id"))
    await websocket.accept()
    found = sessions.find(slot)
    if found is None:
        await websocket.send_json({"type": "error", "detail": f"no session named {shown(slot)!r}"})
        await websocket.close(1008, "unknown session")
        return
    slot = found
    session = slot.running
    if session is not None:
        unknown = reading_filter.unknown_ids(session.fleet)
        if unknown:
            await websocket.send_json({"type": "error", "detail": f"unknown ids in filter: {', '.join(unknown)}"})
            await websocket.close(1008, "unknown ids in filter")
            return
    greeting = {"type": "status", **(slot.session.status() if slot.session else idle_status(slot.name))}
    await slot.broadcaster.serve(websocket, reading_filter, greeting)


@router.get(f"{API}/sessions", summary="Every session: the default one and the named ones, running or not")
async def list_sessions(sessions: LiveSessions):
    listed = []
    for name in [DEFAULT_SLOT, *sorted(set(sessions.slots) - {DEFAULT_SLOT})]:
        session = sessions.slot(name).session if name == DEFAULT_SLOT else sessions.slots[name].session
        status = session.status() if session is not None else idle_status(name)
        listed.append({"name": name, "is_running": status["is_running"], "batteries_count": status["batteries_count"],
                       "recording_id": status["recording_id"],
                       "recording_path": str(session.recording_path) if session is not None else None,
                       "path": API if name == DEFAULT_SLOT else f"{API}/sessions/{name}"})
    return {"sessions": listed, "limits": {"named_sessions": sessions.max_named_sessions,
                                           "live_jars": sessions.max_live_jars}}
