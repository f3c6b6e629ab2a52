"""The live simulation over HTTP and WebSocket: start, stop, status, speed, pause and resume; the scenario catalogue,
applying and clearing scenarios; the alarms; the telemetry WebSocket. The original service's endpoints among them
keep its request and response shapes (``../shared/reference/original-api.md``) and address the default slot.

Requests are validated here (422 naming the field, 404 naming unknown ids, 409 for a request the simulation's
state does not allow), then handed to :mod:`battsim.service.live` (``app.state.sessions``).
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, WebSocket
from starlette.requests import HTTPConnection

from battsim.engine.alarms import RULES, AlarmThresholds
from battsim.engine.fleet import PRESETS
from battsim.scenarios import CATALOGUE, ScenarioError, TimelineError
from battsim.service.app_state import LiveSessions
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
)
from battsim.service.original_api import API, ORIGINAL_TYPICAL_CONDITIONS, ambient_temp_onto
from battsim.service.simulation_bodies import (
    ActiveScenario,
    AlarmsAnswer,
    ApplyRequest,
    CatalogueEntry,
    ClearRequest,
    Preset,
    ScenarioAnswer,
    SessionsAnswer,
    SimulationStatus,
    SpeedRequest,
    StartAnswer,
    StartRequest,
    StopAnswer,
    SubscribersAnswer,
    ignored_fields,
)


def invalid(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, naming the field."""
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": brief(message), "type": "value_error"}])


def warned(warnings: list[str]) -> dict:
    """The ``warnings`` key of a lenient answer, only when there is something to say."""
    return {"warnings": warnings} if warnings else {}


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
# An answer with exactly the keys the code set: the original's shapes have no key added (simulation_bodies).
EXACT = {"response_model_exclude_unset": True}
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


@router.get(f"{API}/presets", summary="Fleet presets", response_model=list[Preset])
async def presets():
    return [{"name": name, "description": spec.description, "sites": len(spec.sites),
             "strings": sum(site.strings for site in spec.sites),
             "batteries": sum(site.strings * site.jars_per_string for site in spec.sites)}
            for name, spec in PRESETS.items()]

# ------------------------------------------------------------------------------------ simulation
@session_router.post("/simulation/start", summary="Start a live simulation", response_model=StartAnswer, **EXACT,
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


@session_router.post("/simulation/stop", summary="Stop the simulation; its recording is marked complete",
                     response_model=StopAnswer, **EXACT)
async def stop(sessions: LiveSessions, slot: SlotName):
    try:
        session = await sessions.stop(slot)
    except NotRunning:  # the original answered 200: a defensive stop before a start must not fail
        return {"status": "stopped", "message": "Simulation stopped successfully",
                "warnings": ["no simulation was running"]}
    return {"status": "stopped", "message": "Simulation stopped successfully",
            "recording_id": session.recorder.run_id, "recording_path": str(session.recording_path),
            "readings_generated": session.readings_generated}


@session_router.get("/simulation/status", summary="Simulation status", response_model=SimulationStatus, **EXACT)
async def status(sessions: LiveSessions, slot: SlotName):
    session = found_slot(sessions, slot).session
    return session.status() if session is not None else idle_status(slot)


@session_router.post("/simulation/speed", summary="Change the speed while running", response_model=SimulationStatus,
                     **EXACT)
async def set_speed(request: SpeedRequest, sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.set_speed(request.speed)
    return session.status()


@session_router.post("/simulation/pause", summary="Pause virtual time", response_model=SimulationStatus, **EXACT)
async def pause(sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.pause()
    return session.status()


@session_router.post("/simulation/resume", summary="Resume virtual time", response_model=SimulationStatus, **EXACT)
async def resume(sessions: LiveSessions, slot: SlotName):
    session = running(sessions, slot)
    session.resume()
    return session.status()

# ------------------------------------------------------------------------------------ scenarios
@router.get(f"{API}/scenarios", summary="The scenario catalogue", response_model=list[CatalogueEntry])
async def scenarios():
    return [{"scenario": spec.name, "name": spec.title, "description": spec.description,
             "typical_conditions": ORIGINAL_TYPICAL_CONDITIONS.get(spec.name, {}),
             "conditions": spec.typical_conditions, "scope": spec.scope.value,
             "parameters": spec.params.model_json_schema().get("properties", {})}
            for spec in CATALOGUE.values()]


@session_router.get("/scenarios/active", summary="Scenarios acting now", response_model=list[ActiveScenario])
async def active_scenarios(sessions: LiveSessions, slot: SlotName):
    return running(sessions, slot).scenarios.active()


@session_router.post("/scenarios/apply", summary="Apply a scenario to batteries, strings or sites",
          response_model=ScenarioAnswer, **EXACT,
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
          response_model=ScenarioAnswer, **EXACT,
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
@session_router.get("/alarms", summary="Alarm rules and the alarms raised now", response_model=AlarmsAnswer)
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
@session_router.get("/ws/subscribers", summary="WebSocket subscribers: sent, dropped, queued",
                    response_model=SubscribersAnswer)
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


@router.get(f"{API}/sessions", summary="Every session: the default one and the named ones, running or not",
            response_model=SessionsAnswer)
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
