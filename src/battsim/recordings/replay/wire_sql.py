"""Readings encoded to wire JSON inside DuckDB, and the Arrow buffer split at tick boundaries.

No Python runs per reading: a query's rows come back as one Arrow string column whose data buffer *is* the
concatenated JSON (the format of :mod:`battsim.wire`), and a tick is a slice of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from battsim.wire import WIRE_NUMBERS, iso_utc


@dataclass
class TickChunk:
    """Consecutive ticks of encoded readings: tick ``i`` is ``data[byte_at[i]:byte_at[i+1]]``."""

    lo_us: int  # the time range the chunk covers, [lo, hi)
    hi_us: int
    tick_us: np.ndarray
    tick_rows: np.ndarray
    byte_at: list[int]
    sim_time: list[str]
    data: memoryview
    next: int = 0

    @property
    def exhausted(self) -> bool:
        return self.next >= len(self.tick_us)


def reading_prefixes(batteries: list[tuple[int, str, str, str]]) -> list[str]:
    """Per battery_key (a list index), the JSON of a reading up to its timestamp's value."""
    prefixes = [""] * (max(key for key, *_ in batteries) + 1 if batteries else 0)
    for key, battery_id, site_id, string_id in batteries:
        prefixes[key] = (f'{{"battery_id":{json.dumps(battery_id)},"site_id":{json.dumps(site_id)},'
                         f'"string_id":{json.dumps(string_id)},"timestamp":"')
    return prefixes


def encoded_query(everything: bool, where: str, tail: str = "") -> str:
    """The query that turns stored rows into wire JSON, each reading ending in a comma.

    Its parameters: ``$prefix`` (per battery_key, the reading's JSON up to its timestamp: :func:`reading_prefixes`),
    ``$modes`` (MODE_NAMES), ``$keys`` (the selected battery keys, unless ``everything``) and those of ``where``.
    """
    numbers = []
    for index, (name, decimals) in enumerate(WIRE_NUMBERS):
        scale = f"1e{decimals}"
        # numpy's np.round (multiply, round half to even, divide), so values equal the live frames';
        # written with fixed decimals (24.10), which DuckDB formats twice as fast as shortest (24.1).
        separator = '",' if index == 0 else ","  # the first one closes the timestamp string
        numbers.append(f"'{separator}\"{name}\":', coalesce(CASE WHEN isfinite({name}) THEN "
                       f"(round_even({name}::DOUBLE * {scale}, 0) / {scale})::DECIMAL(18, {decimals})::VARCHAR END, 'null')")
        if name == "soh_pct":
            numbers.append("',\"mode\":\"', $modes[mode + 1], '\"'")
    selected = "" if everything else " AND list_contains($keys, battery_key)"
    return (f"SELECT epoch_us(timestamp) AS t, battery_key AS k, concat($prefix[battery_key + 1], "
            f"strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S+00:00'), {', '.join(numbers)}, '}},') AS j "
            f"FROM (SELECT * FROM reading_samples WHERE {where}{selected}{tail})")


def in_order(t: np.ndarray, k: np.ndarray) -> bool:
    if len(t) < 2:
        return True
    dt = np.diff(t)
    return bool(np.all((dt > 0) | ((dt == 0) & (np.diff(k.astype(np.int32)) > 0))))


def split_ticks(lo_us: int, hi_us: int, t: np.ndarray, column: pa.ChunkedArray) -> TickChunk:
    """Split one query's rows at tick boundaries; the JSON stays in the Arrow buffer it came in."""
    if len(t) == 0:
        return TickChunk(lo_us, hi_us, t, t, [0], [], memoryview(b""))
    array = column.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if pa.types.is_large_string(array.type) else np.int32)
    offsets = offsets[array.offset: array.offset + len(array) + 1]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(t)) + 1, [len(t)]])
    tick_us = t[starts[:-1]]
    if np.all(tick_us % 1_000_000 == 0):
        sim_time = np.char.add(np.datetime_as_string(tick_us.astype("datetime64[us]"), unit="s"), "+00:00").tolist()
    else:
        sim_time = [iso_utc(us) for us in tick_us.tolist()]
    return TickChunk(lo_us, hi_us, tick_us, np.diff(starts), offsets[starts].tolist(), sim_time,
                     memoryview(data_buffer))
