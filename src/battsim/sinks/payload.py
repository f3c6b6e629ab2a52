"""Readings as JSON for the sinks that send JSON (webhook, MQTT): the WebSocket's reading fields, names and
decimals (WIRE_NUMBERS, the original service's rounding) plus the tick's ``seq`` and, per message, ``sent_at``.

Rows are encoded column by column, as the WebSocket frames are: no Python loop over readings. A batch's rows
are addressed by ``battery_key`` (the recording's key), so a replaced jar's readings carry its new id."""

from __future__ import annotations

import json

import numpy as np

from battsim.engine.battery import MODE_NAMES
from battsim.engine.maintenance import JAR_REPLACED
from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.wire import WIRE_NUMBERS, format_numbers, iso_utc


class JarIds:
    """battery_key → battery id, site, string; grows when a jar is replaced (its new key comes in an event
    before any batch that carries it). The table is replaced whole, so a worker thread reading it meanwhile
    sees the old one or the new one, never half of a change."""

    def __init__(self, battery_ids: list[str], site_ids: list[str], string_ids: list[str]):
        self.table: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] = (
            tuple(battery_ids), tuple(site_ids), tuple(string_ids))

    @classmethod
    def of_fleet(cls, fleet) -> JarIds:
        return cls(list(fleet.battery_ids), [fleet.site_ids[index] for index in fleet.battery_site],
                   [fleet.string_ids[index] for index in fleet.battery_string])

    @property
    def battery_ids(self) -> tuple[str, ...]:
        return self.table[0]

    def learn(self, event: Event) -> bool:
        """Take a replaced jar's new key from its event; True if it was one."""
        if event.kind != JAR_REPLACED:
            return False
        key = int(event.detail["battery_key"])
        columns = [list(column) + [""] * max(0, key + 1 - len(column)) for column in self.table]
        for column, value in zip(columns, (event.battery_id, event.site_id, event.string_id), strict=True):
            column[key] = value
        self.table = tuple(tuple(column) for column in columns)
        return True


class JsonRows:
    """Encodes a batch's readings as JSON object strings, one per reading."""

    def __init__(self, ids: JarIds):
        self.ids = ids
        self._prefix = np.empty(0, dtype=object)
        self._table = None
        self._modes = np.array([f',"mode":"{name}"' for name in MODE_NAMES], dtype=object)

    def prefixes(self) -> np.ndarray:
        """'{"battery_id":..,"site_id":..,"string_id":..,' of every key (rebuilt when a jar was added)."""
        table = self.ids.table
        if self._table is not table:
            self._prefix = np.array([
                '{"battery_id":' + json.dumps(battery) + ',"site_id":' + json.dumps(site)
                + ',"string_id":' + json.dumps(string) + ","
                for battery, site, string in zip(*table, strict=True)], dtype=object)
            self._table = table
        return self._prefix

    def rows(self, batch: ReadingBatch, sent_at: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """JSON objects of readings ``start:stop`` of ``batch`` with ``seq`` (the tick's, as on the WebSocket)
        and ``sent_at``."""
        columns = batch.columns
        total = len(columns["battery_key"])
        stop = total if stop is None else stop
        window = slice(start, stop)
        per_tick = total // max(batch.ticks, 1)  # a batch is tick-major: every jar of tick k, then k+1
        first, last = start // per_tick, (stop - 1) // per_tick
        where = np.arange(start, stop) // per_tick - first
        seq = np.array([f',"seq":{batch.first_tick + tick}' for tick in range(first, last + 1)], dtype=object)
        times = np.array([f'"timestamp":"{iso_utc(int(columns["timestamp_us"][tick * per_tick]))}"'
                          for tick in range(first, last + 1)], dtype=object)
        parts = [self.prefixes()[columns["battery_key"][window]], times[where]]
        for name, decimals in WIRE_NUMBERS:
            parts += [f',"{name}":', format_numbers(columns[name][window], decimals).astype(object)]
            if name == "soh_pct":
                parts.append(self._modes[columns["mode"][window]])
        parts += [seq[where], f',"sent_at":"{sent_at}"' + ROW_END]
        fragments = np.empty((stop - start, len(parts)), dtype=object)
        for column, part in enumerate(parts):
            fragments[:, column] = part
        # One join over the whole matrix, split at the row ends (as the WebSocket's encoder does): far fewer
        # intermediate strings than concatenating column by column.
        return np.array("".join(fragments.ravel().tolist()).split("\x00")[:-1], dtype=object)


# Ends a reading's fragments; JSON text never contains a raw NUL (json.dumps escapes it).
ROW_END = "}\x00"
