"""Timelines: TOML files that say what happens when, scheduled or at random.

    timezone = "Asia/Bangkok"          # local times below are read in this zone (default Asia/Bangkok)

    [[event]]
    scenario = "power_outage"
    at = "14:00"                       # a local time of day, an ISO 8601 date-time, or "+3d" after the start
    repeat = "daily"                   # optional: hourly, daily, weekly, monthly, yearly, or an RFC 5545 RRULE
    until = "2026-06-30"               # optional: no occurrence after this
    duration = "2h"                    # optional: otherwise until a later action = "clear"
    sites = "all"                      # or a list of site ids; also strings = [...], batteries = [...]
    params = { }                       # the scenario's parameters

    [[random]]
    kind = "grid_outage"               # grid_outage, hvac_fault or battery_failure
    sites = "all"

Recurrences are expanded by python-dateutil's ``rrule`` over *local wall-clock* times, which are then
placed in the zone with ``zoneinfo``: 14:00 stays 14:00 through a DST change. Everything is checked
when the file is loaded (and the target ids when it is installed on a fleet), so a bad file is refused
before a run starts, with a message naming the file, the event and the field.

Every quantity is bounded, so nothing a file says can overflow a datetime or stall the simulation:
the text is at most MAX_TIMELINE_BYTES, with at most MAX_ENTRIES entries nested at most MAX_NESTING
deep; durations and "+offsets" are above 0 and at most 100 years; date-times lie in the years
1970-2199; a repeat is at most hourly (FREQ from HOURLY to YEARLY, one BYMINUTE and one BYSECOND at
most, INTERVAL 1-1000) and is expanded over at most 100 years from its first occurrence.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from battsim.scenarios.catalogue import CATALOGUE
from battsim.scenarios.controller import ScenarioError, Scenarios, Targets, get_spec, validate_params
from battsim.scenarios.random_events import start_random_process
from battsim.timeparse import MAX_DURATION_S, parse_duration
from battsim.user_files import read_user_file

if TYPE_CHECKING:
    from battsim.engine.fleet import FleetLayout
    from battsim.engine.world import World

DEFAULT_TIMEZONE = "Asia/Bangkok"
_REPEAT_WORDS = {"hourly": "FREQ=HOURLY", "daily": "FREQ=DAILY", "weekly": "FREQ=WEEKLY",
                 "monthly": "FREQ=MONTHLY", "yearly": "FREQ=YEARLY"}
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")

# Caps on the text (README "Timelines"). The shipped timelines are under 3 kB with 7 entries nested 2
# deep; a timeline of 1,000 events loads in about 20 ms. Deeper nesting would exhaust tomllib's recursion.
MAX_TIMELINE_BYTES = 256 * 1024
MAX_ENTRIES = 1_000
MAX_NESTING = 16
# Date-times a timeline may name: from the recordings' epoch to well past any run's end.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2199
# Repeats: at most hourly, so an event cannot flood the simulation; each is expanded over at most the
# longest run.
REPEAT_FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
MAX_REPEAT_INTERVAL = 1_000
REPEAT_HORIZON = timedelta(seconds=MAX_DURATION_S)
# A rule that never matches (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30, FREQ=HOURLY;BYSETPOS=2) would be walked by
# dateutil period after period to the year 9999, since it checks UNTIL on matches only: 4.7 s for that daily
# rule, 267 s for that hourly one, on the loop that paces a live simulation. So a rule is first probed from its
# start's month, day and time in a year this close to 9999, where the walk ends soon: 30 years hold every
# weekday of every date and several leap days (the weekday cycle is 28 years), and 30 of the rule's periods.
PROBE_YEARS = 30
_PERIOD_YEARS = {"HOURLY": 1 / 8766, "DAILY": 1 / 365.25, "WEEKLY": 7 / 365.25, "MONTHLY": 1 / 12, "YEARLY": 1.0}
# An HVAC that fails more often than hourly is no scenario anyone models, and would flood the events.
MIN_HVAC_MTBF_S = 3_600.0


class TimelineError(ValueError):
    """A timeline that cannot be used; the message names the file, the event and the field."""


def _shown(value: Any) -> str:
    """``value`` for an error message, cut short: messages never echo the input back in bulk."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_instant(value: datetime | date) -> None:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"{_shown(value.isoformat())} is outside the years {EARLIEST_YEAR}-{LATEST_YEAR}")


def _parse_instant(text: str, expected: str) -> datetime:
    """An ISO 8601 date or date-time in the years EARLIEST_YEAR-LATEST_YEAR (ValueError saying ``expected``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not {expected}") from None
    _check_instant(moment)
    return moment


TargetIds = Literal["all"] | list[str] | str | None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str | None = Field(default=None, description="A label for events and error messages.")
    sites: TargetIds = None
    strings: TargetIds = None
    batteries: TargetIds = None

    def targets(self) -> dict:
        return {key: value for key in ("sites", "strings", "batteries") if (value := getattr(self, key)) is not None}


class EventEntry(_Entry):
    """One ``[[event]]``: a scenario applied (or cleared) at a time, maybe repeating."""

    scenario: str
    action: Literal["apply", "clear"] = "apply"
    at: str | datetime | date | time
    repeat: str | None = None
    until: str | datetime | date | None = None
    duration: str | float | int | None = None
    params: dict = Field(default_factory=dict)

    @field_validator("scenario")
    @classmethod
    def _known(cls, value: str) -> str:
        get_spec(value)
        return value

    @field_validator("at")
    @classmethod
    def _moment(cls, value):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("+"):
                parse_duration(text[1:])
            elif match := _TIME_OF_DAY.match(text):
                hour, minute, second = (int(part or 0) for part in match.groups())
                if hour > 23 or minute > 59 or second > 59:
                    raise ValueError(f"{_shown(value)} is not a time of day (00:00 to 23:59:59)")
            else:
                _parse_instant(text, "a time of day (\"14:00\"), an ISO 8601 date-time (\"2026-03-29T14:00\") "
                               "or an offset from the start (\"+3d\")")
        elif isinstance(value, date):
            _check_instant(value)
        return value

    @field_validator("repeat")
    @classmethod
    def _rule(cls, value):
        if value is not None and not matches_ever(rule_text(value), datetime(2026, 1, 1)):
            raise ValueError(f"{_shown(value)} never matches (no occurrence in {PROBE_YEARS} years from 1 January, "
                             "midnight): check BYMONTHDAY against BYMONTH's days, and BYSETPOS against what one "
                             "period holds")
        return value

    @field_validator("until")
    @classmethod
    def _until(cls, value):
        if isinstance(value, str):
            _parse_instant(value.strip(), "an ISO 8601 date or date-time")
        elif isinstance(value, date):
            _check_instant(value)
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.action == "clear" and (self.duration is not None or self.params):
            raise ValueError("a clear action takes no duration or params")
        if self.until is not None and self.repeat is None:
            raise ValueError("until is only for a repeating event (give repeat)")
        if self.until is not None and "COUNT" in _rule_parts(rule_text(self.repeat)):
            raise ValueError("give COUNT in the repeat rule or until, not both")
        return self


class RandomEntry(_Entry):
    """One ``[[random]]``: a seeded random process per target site."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    kind: Literal["grid_outage", "hvac_fault", "battery_failure"]
    sites: TargetIds = "all"
    rate_per_year: float | None = Field(
        default=None, ge=0, le=365,
        description="grid_outage: outages a year at each site; default the site's outages_per_year.",
    )
    duration_min: str | float | None = Field(default=None, description="grid_outage: shortest outage (30min).")
    duration_max: str | float | None = Field(default=None, description="grid_outage: longest outage (90min).")
    mtbf: str | float | None = Field(default=None, description="hvac_fault: mean time between failures (365d; 1h at least).")
    mttr: str | float | None = Field(default=None, description="hvac_fault: mean time to repair (8h).")
    hazard_scale: float | None = Field(
        default=None, gt=0, le=10_000,
        description="battery_failure: multiplies every sudden-failure hazard of the profiles (1; 100 for a demo).",
    )

    @field_validator("duration_min", "duration_max", "mtbf", "mttr")
    @classmethod
    def _duration(cls, value):
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _fields_of_kind(self):
        own = {"grid_outage": {"rate_per_year", "duration_min", "duration_max"}, "hvac_fault": {"mtbf", "mttr"},
               "battery_failure": {"hazard_scale"}}[self.kind]
        for key in ("rate_per_year", "duration_min", "duration_max", "mtbf", "mttr", "hazard_scale"):
            if key not in own and getattr(self, key):
                raise ValueError(f"{key} does not apply to kind {self.kind!r} (it takes: {', '.join(sorted(own))})")
        if self.mtbf is not None and parse_duration(self.mtbf) < MIN_HVAC_MTBF_S:
            raise ValueError(f"mtbf: {_shown(self.mtbf)} is shorter than an hour")
        if self.kind == "grid_outage":
            low = parse_duration(self.duration_min or "30min")
            high = parse_duration(self.duration_max or "90min")
            if low > high:
                raise ValueError(f"duration_min ({self.duration_min or '30min'}) is longer than duration_max "
                                 f"({self.duration_max or '90min'})")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str = ""
    timezone: str = DEFAULT_TIMEZONE
    event: list[dict] = Field(default_factory=list)
    random: list[dict] = Field(default_factory=list)


def _rule_parts(text: str) -> dict[str, str]:
    """The KEY=VALUE parts of one RRULE line, keys upper-cased (ValueError if it is not of that form)."""
    parts = {}
    for part in text.split(";") if "\n" not in text and "\r" not in text else [""]:
        key, equals, value = part.partition("=")
        key = key.strip().upper()
        if not equals or not key or key in parts:
            raise ValueError(f"{_shown(text)} is not daily, weekly, hourly, monthly, yearly or one RFC 5545 RRULE "
                             "line such as \"FREQ=WEEKLY;BYDAY=MO\"")
        parts[key] = value.strip()
    return parts


def rule_text(repeat: str) -> str:
    """The RRULE of a ``repeat`` value, checked by dateutil and against the caps (ValueError if it is not one)."""
    text = _REPEAT_WORDS.get(repeat.strip().lower(), repeat.strip())
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    parts = _rule_parts(text)
    if "DTSTART" in parts:
        raise ValueError("the rule takes its start from `at`; leave DTSTART out")
    if "UNTIL" in parts:
        raise ValueError("give the end as until = \"2026-06-30\", not UNTIL in the rule")
    if parts.get("FREQ", "").upper() not in REPEAT_FREQUENCIES:
        raise ValueError(f"FREQ={_shown(parts.get('FREQ', ''))}: a repeat is at most hourly (FREQ is one of "
                         f"{', '.join(REPEAT_FREQUENCIES)})")
    interval = parts.get("INTERVAL", "1")
    if not (interval.isascii() and interval.isdigit() and 1 <= int(interval) <= MAX_REPEAT_INTERVAL):
        raise ValueError(f"INTERVAL={_shown(interval)} is not a whole number from 1 to {MAX_REPEAT_INTERVAL}")
    for key in ("BYMINUTE", "BYSECOND"):
        if "," in parts.get(key, ""):
            raise ValueError(f"{key}: give one value at most (a repeat is at most hourly)")
    try:
        rrulestr(text, dtstart=datetime(2026, 1, 1))
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"{_shown(repeat)} is not daily, weekly, hourly, monthly, yearly or an RFC 5545 RRULE "
                         f"such as \"FREQ=WEEKLY;BYDAY=MO\" ({_shown(str(error))})") from None
    return text


def matches_ever(text: str, start: datetime) -> bool:
    """Whether a checked RRULE started at ``start`` (naive local time) matches at all, decided in bounded time: the
    probe starts at ``start``'s month, day and time PROBE_YEARS (or 30 of its periods) before dateutil's end."""
    parts = _rule_parts(text)
    span = _PERIOD_YEARS[parts["FREQ"].upper()] * int(parts.get("INTERVAL", "1")) * PROBE_YEARS
    year = datetime.max.year - min(max(PROBE_YEARS, math.ceil(span)), datetime.max.year - EARLIEST_YEAR)
    while True:
        try:
            probe_start = start.replace(year=year)
            break
        except ValueError:  # 29 February: the nearest leap year before
            year -= 1
    return next(iter(rrulestr(text, dtstart=probe_start).replace(count=None)), None) is not None


def rule_parts(repeat: str) -> dict[str, str]:
    """The checked RRULE of a ``repeat`` value as its KEY=VALUE parts, keys upper-cased ("daily": {"FREQ": "DAILY"})."""
    return _rule_parts(rule_text(repeat))


# ---------------------------------------------------------------------------------------- the timeline
@dataclass(frozen=True)
class ScheduledEvent:
    """An ``[[event]]`` after checking: when it happens, what it does, to what."""

    label: str
    entry: EventEntry
    duration_s: float | None

    def occurrences(self, zone: ZoneInfo, installed: datetime) -> Iterator[datetime]:
        """Aware instants, ascending, of every occurrence (the first may lie before ``installed``)."""
        at = self.entry.at
        if isinstance(at, str) and at.strip().startswith("+"):
            first = installed + timedelta(seconds=parse_duration(at.strip()[1:]))
        elif isinstance(at, (time, str)) and (isinstance(at, time) or _TIME_OF_DAY.match(at.strip())):
            clock = at if isinstance(at, time) else time(*(int(p or 0) for p in _TIME_OF_DAY.match(at.strip()).groups()))
            day = installed.astimezone(zone).date()
            first = datetime.combine(day, clock, tzinfo=zone)
            if self.entry.repeat is None and first < installed:
                first = datetime.combine(day + timedelta(days=1), clock, tzinfo=zone)
        else:
            first = _aware(at, zone)
        if self.entry.repeat is None:
            yield first
            return
        text = rule_text(self.entry.repeat)
        start = first.astimezone(zone).replace(tzinfo=None)
        until = start + REPEAT_HORIZON
        if self.entry.until is not None:
            until = min(until, _aware(self.entry.until, zone, end_of_day=True).astimezone(zone).replace(tzinfo=None))
        # COUNT is counted here, so that UNTIL (which dateutil will not combine with it) caps every rule.
        count = _rule_parts(text).get("COUNT")
        if not matches_ever(text, start):  # it never does: dateutil would walk to the year 9999 to say so
            return
        rule = rrulestr(text, dtstart=start).replace(until=until, count=None)
        for index, local in enumerate(rule):
            if count is not None and index >= int(count):
                return
            yield local.replace(tzinfo=zone)


def _aware(value, zone: ZoneInfo, end_of_day: bool = False) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        value = datetime.fromisoformat(text)
        if end_of_day and "T" not in text.upper() and " " not in text:
            value = value + timedelta(days=1) - timedelta(microseconds=1)
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(23, 59, 59, 999_999) if end_of_day else time())
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


@dataclass(frozen=True)
class Timeline:
    """A checked timeline, ready to install on any number of worlds."""

    source: str
    timezone: str
    description: str
    events: tuple[ScheduledEvent, ...]
    randoms: tuple[tuple[str, RandomEntry], ...]
    text: str = field(repr=False, default="")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def check(self, fleet: FleetLayout) -> None:
        """Refuse target ids the fleet does not have (TimelineError naming the file, event and field)."""
        targets = Targets(fleet)
        for label, entry in [(event.label, event.entry) for event in self.events] + list(self.randoms):
            try:
                targets.resolve(**entry.targets())
            except ScenarioError as error:
                raise TimelineError(f"{self.source}: {label}: {error}") from None

    def install(self, world: World, controller: Scenarios) -> None:
        """Schedule every event and start every random process on the world's clock, from now on."""
        self.check(world.fleet)
        if controller.world is not world:
            raise ValueError("the controller belongs to another world")
        installed = world.start + timedelta(seconds=world.env.now)
        for event in self.events:
            world.env.process(self._play(world, controller, event, installed))
        for label, entry in self.randoms:
            start_random_process(world, controller, entry, source=f"{Path(self.source).name}: {label}")

    def _play(self, world: World, controller: Scenarios, event: ScheduledEvent, installed: datetime):
        env, entry = world.env, event.entry
        source = f"timeline {Path(self.source).name}: {event.label}"
        for moment in event.occurrences(self.zone, installed):
            at_s = world.sim_seconds(moment)
            if at_s < env.now and (event.duration_s is None or at_s + event.duration_s <= env.now):
                continue  # over before we began
            if at_s > env.now:
                yield env.timeout(at_s - env.now)
            yield env.timeout(0)  # after a tick due at this instant: that tick's interval came before
            if entry.action == "clear":
                controller.clear(name=entry.scenario, **entry.targets())
            else:
                remaining = None if event.duration_s is None else at_s + event.duration_s - env.now
                if remaining is not None and remaining <= 0:
                    continue  # a duration too short to outlast the rounding of the clock
                controller.apply(entry.scenario, params=entry.params, duration_s=remaining, source=source,
                                 **entry.targets())

    def describe(self) -> list[dict]:
        """The events and random processes, for listings."""
        rows = [{"label": e.label, **e.entry.model_dump(exclude_none=True)} for e in self.events]
        rows += [{"label": label, **entry.model_dump(exclude_none=True)} for label, entry in self.randoms]
        return rows


def _label(kind: str, index: int, data: dict, key: str) -> str:
    name = data.get("name") or data.get(key)
    if isinstance(name, str) and len(name) > 60:
        name = name[:57] + "..."
    return f"[[{kind}]] #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(entry)"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "; ".join(lines)


def _nesting(text: str) -> int:
    """The deepest nesting of arrays and inline tables in TOML text, outside strings and comments.

    Counted before parsing because tomllib recurses once per level (3,000 levels: RecursionError).
    """
    depth = deepest = 0
    position, length = 0, len(text)
    while position < length:
        char = text[position]
        if char == "#":
            position = text.find("\n", position)
            if position < 0:
                break
        elif char in "\"'":
            quote = text[position:position + 3] if text.startswith(char * 3, position) else char
            position += len(quote)
            while position < length and not text.startswith(quote, position):
                position += 2 if char == '"' and text[position] == "\\" else 1
            if len(quote) == 3:  # a multi-line string may end in up to two quotes of its own: """a"""""
                while text.startswith(char, position + 3):
                    position += 1
            position += len(quote) - 1
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
        position += 1
    return deepest


def load_timeline(path_or_text: str | Path, source: str | None = None) -> Timeline:
    """Read and check a timeline from a file path, a shipped timeline's name (``"daily-outage"``, as
    ``battsim run --timeline`` takes it; a file of that name wins), or TOML text."""
    if isinstance(path_or_text, Path) or ("\n" not in path_or_text and "=" not in path_or_text):
        path = Path(path_or_text)
        shipped = shipped_timelines().get(str(path_or_text).removesuffix(".toml"))
        if shipped is not None and path.parent == Path(".") and not path.exists():
            source, path = source or str(path_or_text), shipped
        source = source or str(path)
        return parse_timeline(read_user_file(path, TimelineError, "a timeline", max_bytes=MAX_TIMELINE_BYTES,
                                             source=source), source)
    return parse_timeline(path_or_text, source or "<timeline>")


def parse_timeline(text: str, source: str = "<timeline>") -> Timeline:
    """Check a timeline given as TOML text (TimelineError naming ``source``, the entry and the field)."""
    if len(text) > MAX_TIMELINE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TIMELINE_BYTES:
        raise TimelineError(f"{source}: larger than {MAX_TIMELINE_BYTES:,} bytes, the most a timeline may be")
    if _nesting(text) > MAX_NESTING:
        raise TimelineError(f"{source}: arrays or tables nested more than {MAX_NESTING} deep")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TimelineError(f"{source}: not valid TOML: {error}") from None
    try:
        top = _File.model_validate(data)
    except ValidationError as error:
        allowed = "name, description, timezone, [[event]], [[random]]"
        raise TimelineError(f"{source}: {_problems(error)} (top-level keys: {allowed})") from None
    if len(top.event) + len(top.random) > MAX_ENTRIES:
        raise TimelineError(f"{source}: {len(top.event) + len(top.random):,} entries; a timeline has at most "
                            f"{MAX_ENTRIES:,} [[event]] and [[random]] entries")
    try:
        ZoneInfo(top.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimelineError(f"{source}: timezone: {_shown(top.timezone)} is not an IANA time zone "
                            "(e.g. Asia/Bangkok, Europe/Berlin, UTC)") from None

    events = []
    for index, raw in enumerate(top.event):
        label = _label("event", index, raw, "scenario")
        try:
            entry = EventEntry.model_validate(raw)
        except ValidationError as error:
            raise TimelineError(f"{source}: {label}: {_problems(error)}") from None
        except ScenarioError as error:
            raise TimelineError(f"{source}: {label}: scenario: {error}") from None
        if entry.action == "apply":
            try:
                validate_params(CATALOGUE[entry.scenario], entry.params)
            except ScenarioError as error:
                raise TimelineError(f"{source}: {label}: {error}") from None
        duration_s = parse_duration(entry.duration) if entry.duration is not None else None
        events.append(ScheduledEvent(label, entry, duration_s))

    randoms = []
    for index, raw in enumerate(top.random):
        label = _label("random", index, raw, "kind")
        try:
            entry = RandomEntry.model_validate(raw)
        except ValidationError as error:
            raise TimelineError(f"{source}: {label}: {_problems(error)}") from None
        randoms.append((label, entry))
    return Timeline(source, top.timezone, top.description, tuple(events), tuple(randoms), text)


SHIPPED_DIRECTORY = Path(__file__).parent


def shipped_timelines() -> dict[str, Path]:
    """The example timelines that come with battsim, by name (``daily-outage`` …)."""
    return {path.stem: path for path in sorted(SHIPPED_DIRECTORY.glob("*.toml"))}
