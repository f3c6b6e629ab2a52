"""The scenario builder's form: a timeline as a user composes it, and its exact TOML.

A form holds events, each a scenario with its parameters, its targets, *when* (once at an instant,
recurring daily / on weekdays / weekly / monthly at a local time with an optional end, or at random
at a rate per year) and a duration. :func:`form_to_toml` writes the timeline TOML that
``battsim run --timeline`` and :func:`~battsim.scenarios.timeline.parse_timeline` read, and
:func:`timeline_to_form` reads any timeline the form can express back into a form, so that
form → TOML → form is the identity and TOML written here → form → TOML gives the same text.

A form is checked entry by entry with the timeline module's own models, and every problem is a
:class:`FormError` naming the form field (``events.0.when.time``), not the TOML key behind it.
Random events are only power outages (a ``[[random]]`` grid_outage: the one random kind with a rate),
and they come after the scheduled events in the TOML, so a form read back lists them last.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from battsim.scenarios.catalogue import CATALOGUE
from battsim.scenarios.controller import ScenarioError, Targets, validate_params
from battsim.scenarios.timeline import (
    DEFAULT_TIMEZONE,
    MAX_ENTRIES,
    EventEntry,
    RandomEntry,
    ScheduledEvent,
    Timeline,
    TimelineError,
    parse_timeline,
    rule_parts,
)

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
WORKING_DAYS = WEEKDAYS[:5]
Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
Id = Annotated[str, Field(min_length=1, max_length=100)]


class FormError(ValueError):
    """A form field that cannot be used: ``loc`` is its path in the form, ``message`` what is wrong."""

    def __init__(self, loc: tuple, message: str) -> None:
        super().__init__(f"{'.'.join(str(part) for part in loc)}: {message}")
        self.loc, self.message = loc, message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FormTargets(_Strict):
    """What the event acts on; all three empty: the whole fleet."""

    sites: list[Id] = Field(default_factory=list, max_length=10_000)
    strings: list[Id] = Field(default_factory=list, max_length=10_000)
    batteries: list[Id] = Field(default_factory=list, max_length=10_000)


class Once(_Strict):
    kind: Literal["once"] = "once"
    at: str = Field(max_length=64, description='A local date-time ("2026-03-02T14:00", in the timeline\'s zone), '
                    'a time of day ("14:00": the next one), or an offset from when it is installed ("+10min").')


class Recurring(_Strict):
    kind: Literal["recurring"] = "recurring"
    every: Literal["daily", "weekdays", "weekly", "monthly"]
    time: str = Field(max_length=8, description="Local time of day, HH:MM (or HH:MM:SS), in the timeline's zone.")
    days: list[Weekday] = Field(default_factory=list, max_length=7,
                                description="weekly: on these days (none: the weekday it starts on).")
    day_of_month: int | None = Field(default=None, ge=1, le=31,
                                     description="monthly: on this day (none: the day it starts on; 31 skips "
                                                 "shorter months).")
    starting: date | None = Field(default=None, description="First day (none: the day it is installed).")
    until: date | None = Field(default=None, description="Last day an occurrence may start (none: no end).")

    @field_validator("days")
    @classmethod
    def _week_order(cls, days: list[str]) -> list[str]:
        return [day for day in WEEKDAYS if day in days]  # one form for one rule: MO before SU, each once


class AtRandom(_Strict):
    kind: Literal["random"] = "random"
    rate_per_year: float = Field(gt=0, le=365, description="Outages a year at each target site (Poisson).")


class FormEvent(_Strict):
    name: str | None = Field(default=None, max_length=200)
    scenario: str = Field(max_length=100)
    params: dict = Field(default_factory=dict, description="The scenario's parameters (GET /api/v1/scenarios).")
    targets: FormTargets = Field(default_factory=FormTargets)
    when: Once | Recurring | AtRandom = Field(discriminator="kind")
    duration: str | None = Field(default=None, max_length=64, description='"2h", "90min", "PT2H"; none: until '
                                 "cleared (a random outage: 30-90 min).")


class TimelineForm(_Strict):
    """A timeline as the scenario builder composes it."""

    name: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=2000)
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=64,
                          description="The zone the local times are read in (IANA, e.g. Asia/Bangkok).")
    events: list[FormEvent] = Field(default_factory=list, max_length=MAX_ENTRIES)


# ------------------------------------------------------------------------------------------- form → TOML
def _string(text: str) -> str:
    # A JSON string is a TOML basic string once DEL (raw in JSON, not allowed raw in TOML) is escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007F")


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = [f"{key if _BARE_KEY.match(key) else _string(key)} = {_value(item)}"
                 for key, item in value.items() if item is not None]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    raise TypeError(f"{type(value).__name__} has no TOML form here")


def _repeat(when: Recurring) -> str:
    if when.every == "daily":
        return "daily"
    if when.every == "weekdays":
        return "FREQ=WEEKLY;BYDAY=" + ",".join(WORKING_DAYS)
    if when.every == "weekly":
        return "FREQ=WEEKLY;BYDAY=" + ",".join(when.days) if when.days else "weekly"
    return f"FREQ=MONTHLY;BYMONTHDAY={when.day_of_month}" if when.day_of_month else "monthly"


def _targets(targets: FormTargets) -> dict:
    return {key: ids for key in ("sites", "strings", "batteries") if (ids := getattr(targets, key))}


def _entry(event: FormEvent) -> tuple[str, dict, dict]:
    """The ``[[event]]`` or ``[[random]]`` table of one form event, and which form field each key came from."""
    when, named = event.when, {"name": event.name} if event.name else {}
    if isinstance(when, AtRandom):
        if event.scenario != "power_outage":
            raise FormError(("when", "kind"), f"only power_outage happens at random at a rate per year (a "
                            f"[[random]] grid_outage); {event.scenario} can be once or recurring")
        if event.params:
            raise FormError(("params",), "a random power outage takes no parameters")
        if event.targets.strings or event.targets.batteries:
            raise FormError(("targets",), "random outages strike whole sites: choose sites, not strings or jars")
        duration = {"duration_min": event.duration, "duration_max": event.duration} if event.duration else {}
        table = {**named, "kind": "grid_outage", "sites": event.targets.sites or "all",
                 "rate_per_year": when.rate_per_year, **duration}
        fields = {"kind": ("when", "kind"), "sites": ("targets", "sites"), "rate_per_year": ("when", "rate_per_year"),
                  "duration_min": ("duration",), "duration_max": ("duration",)}
        return "random", table, fields
    table = {**named, "scenario": event.scenario}
    fields = {"scenario": ("scenario",), "at": ("when", "at"), "duration": ("duration",), "params": ("params",),
              "sites": ("targets", "sites"), "strings": ("targets", "strings"), "batteries": ("targets", "batteries")}
    if isinstance(when, Once):
        table["at"] = when.at
    else:
        if not _CLOCK.match(when.time):
            raise FormError(("when", "time"), f"{when.time!r} is not a time of day HH:MM (00:00 to 23:59)")
        if when.days and when.every != "weekly":
            raise FormError(("when", "days"), "days are for a weekly repeat")
        if when.day_of_month is not None and when.every != "monthly":
            raise FormError(("when", "day_of_month"), "day_of_month is for a monthly repeat")
        if when.until is not None and when.starting is not None and when.until < when.starting:
            raise FormError(("when", "until"), f"{when.until} is before the first day ({when.starting})")
        table["at"] = f"{when.starting.isoformat()}T{when.time}" if when.starting else when.time
        table["repeat"] = _repeat(when)
        fields.update({"at": ("when", "time"), "repeat": ("when", "every")})
        if when.until is not None:
            table["until"] = when.until.isoformat()
            fields["until"] = ("when", "until")
    if event.duration is not None:
        table["duration"] = event.duration
    table.update(_targets(event.targets))
    if event.params:
        table["params"] = event.params
    return "event", table, fields


def _check(kind: str, table: dict, fields: dict) -> None:
    """The entry checked by the timeline's own models; problems as FormErrors on the form's fields."""
    try:
        entry = (EventEntry if kind == "event" else RandomEntry).model_validate(table)
    except ScenarioError as error:
        raise FormError(("scenario",), str(error)) from None
    except ValidationError as error:
        problem = error.errors()[0]
        key = str(problem["loc"][0]) if problem["loc"] else ""
        raise FormError(fields.get(key, ()), problem["msg"].removeprefix("Value error, ")) from None
    if kind == "event":
        try:
            validate_params(CATALOGUE[entry.scenario], entry.params)
        except ScenarioError as error:
            raise FormError(("params",), str(error)) from None


def form_entries(form: TimelineForm) -> list[tuple[int, str, dict]]:
    """Each form event's (index in the form, "event" or "random", table), checked (FormError otherwise)."""
    try:
        ZoneInfo(form.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise FormError(("timezone",), f"{form.timezone!r} is not an IANA time zone (e.g. Asia/Bangkok, "
                        "Europe/Berlin, UTC)") from None
    entries = []
    for index, event in enumerate(form.events):
        try:
            kind, table, fields = _entry(event)
            _check(kind, table, fields)
        except FormError as error:
            raise FormError(("events", index, *error.loc), error.message) from None
        entries.append((index, kind, table))
    return entries


def form_to_toml(form: TimelineForm) -> str:
    """The timeline TOML of a form (FormError naming the form field if it is not a valid timeline)."""
    lines = []
    for key in ("name", "description"):
        if getattr(form, key):
            lines.append(f"{key} = {_string(getattr(form, key))}")
    lines.append(f"timezone = {_string(form.timezone)}")
    entries = form_entries(form)
    for wanted in ("event", "random"):
        for _, kind, table in entries:
            if kind == wanted:
                lines += ["", f"[[{kind}]]", *(f"{key} = {_value(value)}" for key, value in table.items())]
    return "\n".join(lines) + "\n"


def form_timeline(form: TimelineForm, source: str = "builder") -> tuple[Timeline, list[int]]:
    """The checked timeline of a form, and for each of its events then randoms the form event it came from."""
    entries = form_entries(form)
    order = [index for wanted in ("event", "random") for index, kind, _ in entries if kind == wanted]
    try:
        return parse_timeline(form_to_toml(form), source), order
    except TimelineError as error:  # every entry passed the same models above: only the file as a whole is left
        raise FormError(("events",), str(error)) from None


def check_form(form: TimelineForm, timeline: Timeline, order: list[int], fleet, since: datetime) -> None:
    """What only a fleet and a moment can tell: unknown target ids, and an occurrence that runs past the end
    (``until``) of its repeat, or a repeat that ends before it starts. The ends are checked over the first
    END_CHECK_BUDGET occurrences of the whole form (a daily repeat over 100 years has 36,525: expanding a
    thousand of them would take minutes)."""
    targets = Targets(fleet)
    budget = END_CHECK_BUDGET
    entries = [(event.entry, event) for event in timeline.events] + [(entry, None) for _, entry in timeline.randoms]
    for (entry, scheduled), index in zip(entries, order, strict=True):
        for key in ("sites", "strings", "batteries"):
            ids = getattr(entry, key)
            if ids is not None and ids != "all":
                try:
                    targets.resolve(**{key: ids})
                except ScenarioError as error:
                    raise FormError(("events", index, "targets", key), str(error).removeprefix(f"{key}: ")) from None
        if scheduled is not None and scheduled.entry.until is not None and budget > 0:
            budget = _check_end(scheduled, timeline.zone, since, ("events", index), budget)


END_CHECK_BUDGET = 20_000


def _check_end(event: ScheduledEvent, zone: ZoneInfo, since: datetime, loc: tuple, budget: int) -> int:
    """FormError if the repeat's last occurrence runs past its last day; the budget left (nothing checked when the
    repeat has more occurrences than the budget)."""
    starts = list(islice(event.occurrences(zone, since), budget + 1))
    if len(starts) > budget:
        return 0
    until = event.entry.until
    end_of_day = datetime.combine(until if isinstance(until, date) else date.fromisoformat(str(until)[:10]),
                                  time(), tzinfo=zone) + timedelta(days=1)
    if not starts:
        raise FormError((*loc, "when", "until"), f"{until}: the repeat ends before its first occurrence")
    # Elapsed time, in UTC: within one zone aware arithmetic is wall-clock arithmetic.
    ends = starts[-1].astimezone(UTC) + timedelta(seconds=event.duration_s or 0)
    if event.duration_s is not None and ends > end_of_day:
        ends = ends.astimezone(zone)
        raise FormError((*loc, "duration"), f"{event.entry.duration} runs past the end of the repeat (until {until}): "
                        f"the last occurrence, {starts[-1].isoformat()}, would end {ends.isoformat()}")
    return budget - len(starts)


# ------------------------------------------------------------------------------------------- TOML → form
def _clock_text(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _recurring(event: ScheduledEvent, where: str) -> Recurring:
    entry = event.entry
    parts = {key: value.upper() for key, value in rule_parts(entry.repeat).items()}
    freq, days = parts.pop("FREQ"), parts.pop("BYDAY", None)
    monthday = parts.pop("BYMONTHDAY", None)
    if parts or (freq not in ("DAILY", "WEEKLY", "MONTHLY")) or (days and freq != "WEEKLY") \
            or (monthday and (freq != "MONTHLY" or not monthday.isdigit())):
        raise TimelineError(f"{where}: repeat {entry.repeat!r}: the builder repeats daily, on weekdays, weekly on "
                            "given days or monthly on a day; edit this timeline as TOML")
    day_list = days.split(",") if days else []
    if any(day not in WEEKDAYS for day in day_list):
        raise TimelineError(f"{where}: repeat {entry.repeat!r}: BYDAY takes plain weekdays (MO ... SU) here")
    every = {"DAILY": "daily", "MONTHLY": "monthly"}.get(freq) or (
        "weekdays" if sorted(day_list, key=WEEKDAYS.index) == list(WORKING_DAYS) else "weekly")
    at = entry.at
    if isinstance(at, time):
        clock, starting = at, None
    elif isinstance(at, str) and _CLOCK.match(at.strip()):
        clock, starting = time.fromisoformat(at.strip()), None
    else:
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at).strip()) \
            if not isinstance(at, date) else datetime.combine(at, time())
        if moment.tzinfo is not None:
            raise TimelineError(f"{where}: at {str(at)!r}: a repeat in the builder starts at a local time (no offset)")
        clock, starting = moment.time(), moment.date()
    until = entry.until
    if until is not None:
        if isinstance(until, datetime) or (isinstance(until, str) and len(until.strip()) > 10):
            raise TimelineError(f"{where}: until {str(until)!r}: the builder ends a repeat on a day (YYYY-MM-DD)")
        until = until if isinstance(until, date) else date.fromisoformat(until.strip())
    return Recurring(every=every, time=_clock_text(clock), days=day_list if every == "weekly" else [],
                     day_of_month=int(monthday) if monthday else None, starting=starting, until=until)


def _listed(value) -> list[str]:
    return [] if value is None or value == "all" else [value] if isinstance(value, str) else list(value)


def timeline_to_form(timeline: Timeline) -> TimelineForm:
    """The builder's form of a timeline (TimelineError naming the entry if the builder cannot express it)."""
    events = []
    for event in timeline.events:
        entry, where = event.entry, f"{timeline.source}: {event.label}"
        if entry.action == "clear":
            raise TimelineError(f"{where}: a clear action has no place in the builder; edit this timeline as TOML")
        if entry.repeat is None:
            at = entry.at
            when = Once(at=at if isinstance(at, str) else at.isoformat())
        else:
            when = _recurring(event, where)
        duration = entry.duration if entry.duration is None or isinstance(entry.duration, str) else f"{entry.duration}s"
        events.append(FormEvent(name=entry.name, scenario=entry.scenario, params=entry.params, when=when,
                                duration=duration, targets=FormTargets(sites=_listed(entry.sites),
                                                                       strings=_listed(entry.strings),
                                                                       batteries=_listed(entry.batteries))))
    for label, entry in timeline.randoms:
        where = f"{timeline.source}: {label}"
        if entry.kind != "grid_outage" or entry.rate_per_year is None:
            raise TimelineError(f"{where}: the builder makes random power outages at a rate per year; "
                                "edit this timeline as TOML")
        if entry.duration_min != entry.duration_max:
            raise TimelineError(f"{where}: the builder gives random outages one duration (duration_min = "
                                "duration_max); edit this timeline as TOML")
        if entry.strings is not None or entry.batteries is not None:
            raise TimelineError(f"{where}: random outages strike whole sites; edit this timeline as TOML")
        duration = entry.duration_min if entry.duration_min is None or isinstance(entry.duration_min, str) \
            else f"{entry.duration_min}s"
        events.append(FormEvent(name=entry.name, scenario="power_outage", when=AtRandom(rate_per_year=entry.rate_per_year),
                                duration=duration, targets=FormTargets(sites=_listed(entry.sites))))
    return TimelineForm(name=_name(timeline.text), description=timeline.description, timezone=timeline.timezone,
                        events=events)


def _name(text: str) -> str | None:
    name = tomllib.loads(text).get("name") if text else None
    return name if isinstance(name, str) else None
