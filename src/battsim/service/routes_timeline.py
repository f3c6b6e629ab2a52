"""Timelines over HTTP: install, list, preview, and the scenario builder's conversions.

    GET  /api/v1/timeline             installed in the running simulation, and the shipped ones
    POST /api/v1/timeline             install one (TOML text, a shipped name, or the builder's form) from now on
    POST /api/v1/timeline/preview     its next occurrences on a fleet, beside what is installed; nothing installed
    POST /api/v1/timeline/toml        the builder's form as timeline TOML (what `battsim run --timeline` reads)
    POST /api/v1/timeline/form        timeline TOML as the builder's form
    GET  /api/v1/timeline/targets     the fleet tree the builder picks targets from (site → string → jar)

Every problem is a 422 in FastAPI's validation shape whose ``loc`` names the field, into the form when
one was given (``["body", "form", "events", 0, "duration"]``), so any client can show it beside the input.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from battsim.engine.fleet import PRESETS, Fleet, build_fleet
from battsim.scenarios import Timeline, TimelineError, shipped_timelines
from battsim.scenarios.builder_form import FormError, TimelineForm, check_form, form_timeline, form_to_toml, timeline_to_form
from battsim.scenarios.preview import MAX_OCCURRENCES, occurrences, preview, random_entries
from battsim.scenarios.timeline import MAX_TIMELINE_BYTES, parse_timeline
from battsim.service.app_state import LiveSessions
from battsim.service.limits import brief
from battsim.service.live import DEFAULT_SLOT, NotRunning, Sessions, resolve_timeline

API = "/api/v1"
TimelineText = Field(default=None, max_length=MAX_TIMELINE_BYTES,
                     description=f"TOML text, or a shipped timeline's name. At most {MAX_TIMELINE_BYTES} characters.",
                     examples=["daily-outage"])


@lru_cache(maxsize=len(PRESETS))
def preset_fleet(name: str) -> Fleet:
    """A preset's fleet, built once: its ids and zones do not depend on the seed (the full fleet takes ~0.4 s)."""
    return build_fleet(PRESETS[name], seed=0)


def invalid(loc: tuple, message: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", *loc], "msg": brief(message), "type": "value_error"}])


class TimelineRequest(BaseModel):
    """A timeline as TOML text or a shipped name (``timeline``), or as the builder's form (``form``): one of them."""

    model_config = ConfigDict(extra="forbid")
    timeline: str | None = TimelineText
    form: TimelineForm | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.timeline is None) == (self.form is None):
            raise ValueError("give a timeline (TOML text or a shipped name) or a form, one of them")
        return self


class PreviewRequest(TimelineRequest):
    count: int = Field(default=10, ge=1, le=MAX_OCCURRENCES, description="How many occurrences.")
    since: AwareDatetime | None = Field(default=None, description="From this instant (default: the running "
                                        "simulation's virtual now; with no simulation, the wall clock's now).")
    preset: str | None = Field(default=None, description=f"Preview on this fleet preset ({', '.join(PRESETS)}) "
                               "instead of the running simulation's fleet.")


class FormRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    form: TimelineForm


class TomlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeline: str = Field(max_length=MAX_TIMELINE_BYTES, description="Timeline TOML text.")


class LocalTime(BaseModel):
    timezone: str
    sites: list[str]
    start: str = Field(description="Local start, ISO 8601 with the offset.")
    end: str | None
    utc_offset: str = Field(examples=["+07:00"])
    utc_offset_end: str | None


class Occurrence(BaseModel):
    label: str
    scenario: str
    action: str
    targets: dict
    start: str = Field(description="UTC, ISO 8601.")
    end: str | None = Field(description="UTC; none: until cleared.")
    duration_s: float | None
    source: str
    local: list[LocalTime] = Field(description="The start and end at the target sites, one row per time zone.")


class RandomProcess(BaseModel):
    model_config = ConfigDict(extra="allow")
    label: str
    source: str
    kind: str
    site_ids: list[str]


class Installed(BaseModel):
    occurrences: list[Occurrence] = Field(description="The next occurrences of the installed timelines.")
    random: list[RandomProcess]
    active: list[dict] = Field(description="Scenarios acting now (GET /api/v1/scenarios/active).")


class PreviewResponse(BaseModel):
    since: str
    timezone: str
    fleet: str
    occurrences: list[Occurrence]
    random: list[RandomProcess]
    installed: Installed | None = Field(description="What the running simulation has installed (none: nothing runs).")
    toml: str = Field(description="The timeline as TOML (the form's, or the text given).")


class TomlResponse(BaseModel):
    toml: str


class FormResponse(BaseModel):
    form: TimelineForm


class Jar(BaseModel):
    string_id: str
    batteries: list[str]


class Site(BaseModel):
    site_id: str
    name: str
    timezone: str
    strings: list[Jar]


class TargetsResponse(BaseModel):
    fleet: str
    sites: list[Site]


def running_session(sessions: Sessions):
    try:
        return sessions.running(DEFAULT_SLOT)
    except NotRunning as error:
        raise HTTPException(409, detail=str(error)) from None


def fleet_of(sessions: Sessions, preset: str | None) -> tuple[Fleet, str]:
    if preset is not None:
        if preset not in PRESETS:
            raise invalid(("preset",), f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        return preset_fleet(preset), preset
    session = sessions.slot(DEFAULT_SLOT).running
    if session is None:
        raise HTTPException(409, detail=f"no simulation is running: give a preset to preview on "
                                        f"({', '.join(PRESETS)}) or start one")
    return session.fleet, session.config.preset or session.fleet.spec.name


def timeline_of(request: TimelineRequest, fleet: Fleet, since: datetime) -> Timeline:
    """The request's timeline checked against the fleet, or a 422 naming the field."""
    if request.form is not None:
        try:
            timeline, order = form_timeline(request.form)
            check_form(request.form, timeline, order, fleet, since)
        except FormError as error:
            raise invalid(("form", *error.loc), error.message) from None
        return timeline
    try:
        timeline = resolve_timeline(request.timeline)
        timeline.check(fleet)
    except TimelineError as error:
        raise invalid(("timeline",), str(error)) from None
    return timeline


class InstalledTimeline(BaseModel):
    source: str = Field(description="Its file, shipped name, or `api`.")
    timezone: str
    description: str | None
    events: list[dict[str, Any]] = Field(description="Its events and random processes, each with its label.")
    text: str = Field(description="Its TOML.")


class TimelinesAnswer(BaseModel):
    installed: list[InstalledTimeline] = Field(description="In the running simulation, in the order installed.")
    shipped: dict[str, str] = Field(description="Each shipped timeline's TOML, by name.")


class InstallAnswer(BaseModel):
    status: str
    source: str
    events: list[dict[str, Any]]


router = APIRouter(tags=["timeline"])


@router.get(f"{API}/timeline", summary="Timelines installed in the running simulation, and the shipped ones",
            response_model=TimelinesAnswer)
async def get_timeline(sessions: LiveSessions):
    session = sessions.slot(DEFAULT_SLOT).running
    return {
        "installed": [{"source": t.source, "timezone": t.timezone, "description": t.description,
                       "events": t.describe(), "text": t.text}
                      for t, _ in (session.timelines if session else [])],
        "shipped": {name: path.read_text(encoding="utf-8") for name, path in shipped_timelines().items()},
    }


@router.post(f"{API}/timeline", summary="Install a timeline (TOML text, a shipped name or the builder's form) "
                                        "from now on", response_model=InstallAnswer)
async def post_timeline(request: TimelineRequest, sessions: LiveSessions):
    session = running_session(sessions)
    now = session.sim_now

    def checked() -> Timeline:
        timeline = timeline_of(request, session.fleet, now)
        # A form installs as its TOML text would (source "timeline"), like a timeline sent as text.
        return timeline if request.form is None else resolve_timeline(timeline.text)

    # Parsed and checked off the event loop (a long repeat takes a while to expand), installed on it as parsed.
    try:
        installed = session.install_timeline(await asyncio.to_thread(checked))
    except TimelineError as error:
        raise invalid(("timeline",), str(error)) from None
    return {"status": "installed", "source": installed.source, "events": installed.describe()}


@router.post(f"{API}/timeline/preview", summary="The next occurrences of a timeline on a fleet (nothing installed)",
             response_model=PreviewResponse,
             responses={409: {"description": "No simulation is running and no preset was given"}})
async def post_preview(request: PreviewRequest, sessions: LiveSessions):
    fleet, fleet_name = fleet_of(sessions, request.preset)
    session = sessions.slot(DEFAULT_SLOT).running
    since = request.since or (session.sim_now if session is not None else datetime.now(UTC))
    # What the simulation has, taken on the event loop; the expansions run off it, so they never hold up
    # the live simulation or its subscribers.
    mine = session is not None and request.preset is None
    installed_now = list(session.timelines) if mine else []
    active = session.scenarios.active() if mine else None

    def answer() -> dict:
        timeline = timeline_of(request, fleet, since)
        shown = preview(timeline, fleet, since, request.count)
        installed = None
        if mine:
            rows = sorted((row for each, at in installed_now
                           for row in occurrences(each, fleet, since, request.count, installed=at)),
                          key=lambda row: row["start"])
            installed = {"occurrences": rows[:request.count], "active": active,
                         "random": [row for each, _ in installed_now for row in random_entries(each, fleet)]}
        return {**shown, "fleet": fleet_name, "installed": installed, "toml": timeline.text}

    return await asyncio.to_thread(answer)


@router.post(f"{API}/timeline/toml", summary="The builder's form as timeline TOML", response_model=TomlResponse)
async def post_toml(request: FormRequest):
    try:
        return {"toml": await asyncio.to_thread(form_to_toml, request.form)}
    except FormError as error:
        raise invalid(("form", *error.loc), error.message) from None


@router.post(f"{API}/timeline/form", summary="Timeline TOML as the builder's form", response_model=FormResponse)
async def post_form(request: TomlRequest):
    try:
        return {"form": timeline_to_form(parse_timeline(request.timeline, "timeline"))}
    except TimelineError as error:
        raise invalid(("timeline",), str(error)) from None


@router.get(f"{API}/timeline/targets", summary="The fleet tree (site → string → jar) to pick targets from",
            response_model=TargetsResponse)
async def get_targets(sessions: LiveSessions,
                      preset: str | None = Query(None, max_length=100, description="This preset's fleet instead "
                                                                                   "of the running one's.")):
    try:
        fleet, name = fleet_of(sessions, preset)
    except HTTPException as error:
        if error.status_code == 422:
            raise HTTPException(422, detail=[{"loc": ["query", "preset"], "msg": error.detail[0]["msg"],
                                              "type": "value_error"}]) from None
        raise
    strings: dict[int, list[str]] = {}
    for jar, battery_id in enumerate(fleet.battery_ids):
        strings.setdefault(int(fleet.battery_string[jar]), []).append(battery_id)
    return {"fleet": name, "sites": [
        {"site_id": site_id, "name": fleet.site(index).name, "timezone": fleet.site(index).timezone,
         "strings": [{"string_id": fleet.string_ids[s], "batteries": strings[s]}
                     for s in range(len(fleet.string_ids)) if int(fleet.string_site[s]) == index]}
        for index, site_id in enumerate(fleet.site_ids)]}
