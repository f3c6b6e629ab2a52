"""What a replay is asked for, checked: speeds and instants (ISO 8601, or offsets from the start or the end)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from battsim.engine.world import EPOCH
from battsim.timeparse import parse_duration

SPEED_MIN = 0.01
SPEED_MAX = 100_000.0
# Times a replay may be asked for: the years a recording can hold (a run starts in 1970-2199, the
# timelines' range in scenarios/timeline.py) and offsets up to the longest run, 100 years; beyond
# them Python's datetime (years 1-9999) overflows.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
LATEST_INSTANT = datetime(2299, 12, 31, 23, 59, 59, tzinfo=ZoneInfo("UTC"))


class ReplayError(ValueError):
    """Bad replay input; ``field`` names what was wrong (a CLI flag or request field is derived from it)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_speed(value: str | float, field: str = "speed") -> float:
    """A speed factor between 0.01 and 100000, or ``max`` (as fast as possible, ``math.inf``)."""
    if isinstance(value, str):
        if value.strip().lower() == "max":
            return math.inf
        try:
            value = float(value)
        except ValueError:
            raise ReplayError(field, f"{quoted(value)} is not a number or 'max'") from None
    if math.isnan(value):
        raise ReplayError(field, f"not a number; give {SPEED_MIN:g}-{SPEED_MAX:g} or 'max'")
    if math.isinf(value) and value > 0:
        return math.inf
    if not SPEED_MIN <= value <= SPEED_MAX:
        raise ReplayError(field, f"{value:g} is outside {SPEED_MIN:g}-{SPEED_MAX:g} (or 'max')")
    return float(value)


def parse_instant(value: str | datetime, field: str, start: datetime, end: datetime | None,
                  zone: ZoneInfo) -> datetime:
    """An ISO 8601 time (read in ``zone`` when it has no offset), ``+2h`` from the start, or ``-30m`` from the end.

    An offset is a duration of :mod:`battsim.timeparse` (``+1d6h``, ``+90min``, ``+1.5h``, ``-PT30M``), up to
    100 years; times are in the years 1970-2299.
    """
    if isinstance(value, datetime):
        return _in_range(value if value.tzinfo else value.replace(tzinfo=zone), field)
    text = value.strip()
    if text[:1] in ("+", "-"):
        try:
            seconds = parse_duration(text[1:])
        except ValueError as error:
            raise ReplayError(field, f"offset {error}") from None
        if text[0] == "+":
            return _in_range(start + timedelta(seconds=seconds), field)
        if end is None:
            raise ReplayError(field, "the recording has no readings yet to count back from")
        return _in_range(end - timedelta(seconds=seconds), field)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReplayError(field, f"{quoted(value)} is not an ISO 8601 time (2026-01-01T14:00+07:00) "
                                 "or an offset from the start (+2h, +1d6h) or the end (-30m)") from None
    return _in_range(moment if moment.tzinfo else moment.replace(tzinfo=zone), field)


def _in_range(moment: datetime, field: str) -> datetime:
    # Compared as instants, never converted: a time at the edge of datetime's range with a far offset
    # (9999-12-31T23:00-14:00) would overflow in the conversion.
    if not EARLIEST_INSTANT <= moment <= LATEST_INSTANT:
        raise ReplayError(field, f"{moment.isoformat()} is outside {EARLIEST_INSTANT.isoformat()} to "
                                 f"{LATEST_INSTANT.isoformat()}")
    return moment


def cut(text: str) -> str:
    """Text for an error message, cut short: a message never repeats a long input."""
    return text if len(text) <= 60 else text[:57] + "..."


def quoted(value) -> str:
    return cut(repr(value))


def instant(timestamp_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(timestamp_us))
