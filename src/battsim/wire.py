"""The one wire format of a reading, shared by live telemetry (service/broadcast.py), replay
(recordings/replay/, which encodes inside DuckDB) and the sinks: field decimals and time stamps.

Numbers keep the original service's rounding: 3 decimals for V, A and mΩ, 2 for °C and %. Times are
ISO 8601 in UTC with an explicit offset (``2026-01-01T07:00:00+00:00``), exact to the microsecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (column, decimals) of the numeric fields of a reading on the wire, in order.
WIRE_NUMBERS = (
    ("voltage_v", 3), ("current_a", 3), ("temperature_c", 2), ("internal_resistance_mohm", 3),
    ("soh_pct", 2), ("soc_pct", 2), ("ambient_c", 2),
)


def iso_utc(timestamp_us: int) -> str:
    """ISO 8601 with offset, UTC, of microseconds since the epoch (integer arithmetic: no float rounding)."""
    return (_EPOCH + timedelta(microseconds=int(timestamp_us))).isoformat()


def format_numbers(values: np.ndarray, decimals: int) -> np.ndarray:
    """JSON number strings of ``values`` rounded to ``decimals`` (``null`` for NaN and infinities, which JSON has not).

    Measured values are quantised, so a tick has few distinct values: format those and index.
    """
    rounded = np.round(values.astype(np.float64), decimals)
    distinct, where = np.unique(rounded, return_inverse=True)
    text = distinct.astype("U32")
    text[~np.isfinite(distinct)] = "null"
    return text[where]
