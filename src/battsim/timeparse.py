"""The one duration grammar every edge reads: timelines, `serve --backfill`, replay offsets (`--from +2h`), HTTP.

A duration is "2h", "90min", "1h30m", "1.5h", "2d", "1w", "45s", "2 hours", ISO 8601 "PT2H"/"P1DT6H", or a number
of seconds; ``m`` and ``min`` are minutes (a month is no fixed length, so there is no unit for it).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

# The longest duration anything accepts: the 100 years a run may span (`battsim run --days` at most 36,525).
# Longer is no use, and past about 10^13 s an end no longer fits a datetime.
MAX_DURATION_S = 36_525 * 86_400.0

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "min": 60, "m": 60, "s": 1}
_UNIT_WORDS = {"week": "w", "weeks": "w", "day": "d", "days": "d", "hour": "h", "hours": "h", "hr": "h",
               "hrs": "h", "mins": "min", "minute": "min", "minutes": "min", "sec": "s", "secs": "s",
               "second": "s", "seconds": "s"}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
                           r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
EXAMPLES = '"2h", "90min", "1d12h", "PT2H"'


def shown(value: Any) -> str:
    """``value`` for an error message, cut short: messages never echo the input back in bulk."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_duration(value: Any) -> float:
    """Seconds from a duration (see the module's grammar) or a number of seconds.

    ValueError, saying what is allowed, unless it is above 0 and at most MAX_DURATION_S (100 years).
    """
    if isinstance(value, bool):
        raise ValueError(f"{shown(value)} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _seconds_of_text(value)
    else:
        raise ValueError(f"{shown(value)} is not a duration")
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_DURATION_S):
        raise ValueError(f"{shown(value)} is not above 0 s and at most 100 years ({MAX_DURATION_S:.0f} s)")
    return seconds


def _seconds_of_text(value: str) -> float:
    text = value.strip()
    if iso := _ISO_DURATION.match(text.upper()):
        if not any(iso.groups()) or text.upper().endswith("T"):
            raise ValueError(f"{shown(value)} is not a duration")
        weeks, days, hours, minutes, secs = (float(part or 0) for part in iso.groups())
        return weeks * 604_800 + days * 86_400 + hours * 3_600 + minutes * 60 + secs
    seconds, position, lowered = 0.0, 0, text.lower()
    for part in _DURATION_PART.finditer(lowered):
        if part.start() != position:
            break
        unit = _UNIT_WORDS.get(part.group(2), part.group(2))
        if unit not in _UNIT_SECONDS:
            raise ValueError(f"{shown(value)}: unknown unit {shown(part.group(2))} (use w, d, h, min, s)")
        seconds += float(part.group(1)) * _UNIT_SECONDS[unit]
        position = part.end()
    if position == 0 or lowered[position:].strip():
        raise ValueError(f"{shown(value)} is not a duration (e.g. {EXAMPLES})")
    return seconds
