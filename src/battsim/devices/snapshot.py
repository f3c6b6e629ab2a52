"""The live world as a battery monitor's registers: one tick's values, encoded once, shared by every protocol.

A :class:`DeviceHub` is a live-session attachment factory (service/live.py's ``Attach``): the session started
last is the one the devices serve. Its :class:`DeviceSource` keeps a reference to the newest batch of
readings; the first read after a tick encodes that tick into a :class:`Snapshot` (numpy, every unit at once)
and later reads of the same tick reuse it. Readings, alarms and reads all run on the server's event loop, and
a snapshot is never changed once built, so one request's values always come from one tick.

Controls act on the world through the code the scenarios and the monitor's schedule use: a capacity test is
the ``capacity_test`` scenario applied to the string; an ohmic test puts the string's site on the monitor's
list of sites due for a test at the next tick (engine/monitoring.py), exactly what its schedule does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import battsim
from battsim.devices.register_map import (
    JAR_BLOCK_SPACING,
    MAP_VERSION,
    MAX_UNITS,
    MISSING,
    Field,
    fields,
    table_size,
)
from battsim.engine.alarms import RULE_INDEX, RULES
from battsim.engine.readings import ReadingBatch

if TYPE_CHECKING:
    from battsim.engine.world import Event
    from battsim.service.live import LiveSession

OHMIC_COIL = 0
CAPACITY_COIL = 1


def encode_words(values: np.ndarray, kind: str, scale: float = 1.0) -> np.ndarray:
    """Registers (uint16, shape (n, words)) holding ``round(values × scale)`` as ``kind``; NaN as missing."""
    values = np.asarray(values, dtype=np.float64)
    scaled = np.round(values * scale)
    missing = ~np.isfinite(scaled)
    scaled = np.where(missing, 0.0, scaled)
    if kind in ("uint16", "enum"):
        words = np.clip(scaled, 0, 0xFFFE).astype(np.uint32)
    elif kind == "int16":
        words = np.clip(scaled, -0x7FFF, 0x7FFF).astype(np.int64) & 0xFFFF
    elif kind == "uint32":
        words = np.clip(scaled, 0, 0xFFFF_FFFE).astype(np.uint64)
    elif kind == "int32":
        words = np.clip(scaled, -0x7FFF_FFFF, 0x7FFF_FFFF).astype(np.int64) & 0xFFFF_FFFF
    else:
        raise ValueError(f"kind {kind!r} is not a numeric register type")
    if kind in MISSING:
        words = np.where(missing, MISSING[kind], words)
    words = np.asarray(words, dtype=np.uint64)
    if kind in ("uint32", "int32"):
        return np.stack([words >> 16, words & 0xFFFF], axis=1).astype(np.uint16)
    return words.astype(np.uint16)[:, None]


def encode_text(text: str, words: int) -> np.ndarray:
    """ASCII, two characters per register, high byte first, NUL-padded (non-ASCII as ``?``)."""
    raw = text.encode("ascii", "replace")[: 2 * words].ljust(2 * words, b"\0")
    return np.frombuffer(raw, dtype=">u2").astype(np.uint16)


def pack_bits(bits: np.ndarray) -> list[int]:
    """Bits as 16-bit words, bit 0 in the lowest bit of the first word (how pymodbus packs coil memory)."""
    padded = np.zeros(-(-len(bits) // 16) * 16, dtype=bool)
    padded[: len(bits)] = bits
    return np.packbits(padded.reshape(-1, 16), axis=1, bitorder="little").view("<u2").ravel().tolist()


@dataclass(frozen=True)
class Layout:
    """Which units and addresses a session's fleet fills: the first :data:`MAX_UNITS` strings, their jars."""

    units: int
    jar_count: np.ndarray  # per unit
    valid: dict[str, np.ndarray]  # table -> (units, size) bool: an address a unit answers
    valid_words: dict[str, np.ndarray]  # bit table -> (units, words) bool: a 16-bit word holding such an address

    @classmethod
    def of(cls, string_jars: np.ndarray) -> Layout:
        units = min(len(string_jars), MAX_UNITS)
        jar_count = np.asarray(string_jars[:units], dtype=np.int64)
        valid = {}
        for table in ("input", "discrete", "holding", "coil"):
            mask = np.zeros((units, table_size(table)), dtype=bool)
            for field in fields(table):
                if field.per_jar:
                    mask[:, field.address: field.address + jar_count.max()] = (
                        np.arange(jar_count.max())[None, :] < jar_count[:, None])
                else:
                    mask[:, field.address: field.address + field.words] = True
            valid[table] = mask
        valid_words = {}
        for table in ("discrete", "coil"):
            padded = np.zeros((units, -(-valid[table].shape[1] // 16) * 16), dtype=bool)
            padded[:, : valid[table].shape[1]] = valid[table]
            valid_words[table] = padded.reshape(units, -1, 16).any(axis=2)
        return cls(units, jar_count, valid, valid_words)

    def answers(self, table: str, unit: int, address: int, count: int) -> bool:
        mask = self.valid[table][unit]
        return count > 0 and address + count <= len(mask) and bool(mask[address: address + count].all())

    def answers_words(self, table: str, unit: int, word: int, count: int) -> bool:
        """Whether each of ``count`` 16-bit words of a bit table from ``word`` holds a bit the unit answers."""
        held = self.valid_words[table][unit]
        return count > 0 and word + count <= len(held) and bool(held[word: word + count].all())


@dataclass(frozen=True)
class Tick:
    """One tick's values by name (strings' and jars' arrays) and its alarm states, shared by the protocols."""

    seq: int
    time_s: int
    values: dict[str, np.ndarray]
    active: np.ndarray  # (rules, jars) bool


@dataclass(frozen=True)
class Snapshot:
    """One tick's input registers and discrete inputs for every unit (row = unit - 1)."""

    seq: int
    input: np.ndarray  # (units, size) uint16
    discrete: np.ndarray  # (units, size) bool


class DeviceSource:
    """What the devices read of one live session (an ``Attached``): the newest tick, identification, controls."""

    def __init__(self, hub: DeviceHub, session: LiveSession):
        self.hub = hub
        self.session = session
        world, fleet = session.world, session.fleet
        self.string_start = world.string_start
        self.layout = Layout.of(world.string_jars)
        units = self.layout.units
        self.jars = np.flatnonzero(fleet.battery_string < units)  # jars of served strings
        self.jar_unit = fleet.battery_string[self.jars]
        self.jar_offset = fleet.battery_position[self.jars] - 1
        self.holding = self._identification()
        self.started_monotonic = time.monotonic()  # the monitor's (re)start: SNMP's sysUpTime counts from here
        self.last_cell: dict[int, str] = {}  # unit -> the jar its last notification named (batteryCellIdentifier)
        self.low_float_rule = RULE_INDEX["low_float_voltage"]
        self._batch: ReadingBatch | None = None
        self._tick: Tick | None = None
        self._snapshot: Snapshot | None = None

    # ------------------------------------------------------------------------------ Attached
    def readings(self, batch: ReadingBatch) -> None:
        self._batch, self._tick = batch, None
        for listener in self.hub.tick_listeners:
            listener(self)

    def event(self, event: Event) -> None:
        """Passed to the hub's listeners (the SNMP agent's traps); its effect on values is in the next tick."""
        for listener in self.hub.event_listeners:
            listener(self, event)

    def close(self) -> None:
        self.hub.detach(self)

    # ------------------------------------------------------------------------------ reading
    def tick(self) -> Tick | None:
        """The newest tick's values (None before the first tick), worked out once for every protocol."""
        if self._tick is None and self._batch is not None:
            self._tick = self._values(self._batch)
        return self._tick

    def snapshot(self) -> Snapshot | None:
        """The newest tick as Modbus registers (None before the first tick)."""
        tick = self.tick()
        if tick is not None and (self._snapshot is None or self._snapshot.seq != tick.seq):
            self._snapshot = self._encode(tick)
        return self._snapshot

    def coils(self, unit: int) -> np.ndarray:
        world = self.session.world
        state = np.zeros(table_size("coil"), dtype=bool)
        state[OHMIC_COIL] = int(self.session.fleet.string_site[unit]) in world.monitoring.due
        state[CAPACITY_COIL] = unit in world.capacity_tests
        return state

    def _values(self, batch: ReadingBatch) -> Tick:
        fleet = self.session.fleet
        size, strings = fleet.size, len(fleet.string_ids)
        tick = batch.ticks - 1
        jar = {name: column[tick * size:(tick + 1) * size] for name, column in batch.columns.items()}
        string = {name: column[tick * strings:(tick + 1) * strings] for name, column in batch.string_columns.items()}
        start = self.string_start
        active = self.session.alarms.active.copy()  # (rules, jars), as evaluated on this tick's readings
        seq, time_s = batch.first_tick + tick, int(jar["timestamp_us"][0]) // 1_000_000
        values = {
            "tick_seq": np.full(strings, seq), "tick_time": np.full(strings, time_s),
            "string_voltage_v": string["voltage_v"], "string_current_a": string["current_a"], "mode": string["mode"],
            "string_soc_pct": np.fmin.reduceat(jar["soc_pct"], start),
            "string_soh_pct": np.fmin.reduceat(jar["soh_pct"], start),
            "string_max_temperature_c": np.fmax.reduceat(jar["temperature_c"], start),
            "ambient_c": jar["ambient_c"][start], "ripple_current_a": string["ripple_current_rms_a"],
            "ripple_voltage_v": string["ripple_voltage_rms_v"], "jar_count": self.session.world.string_jars,
            "active_alarms": np.add.reduceat(active.sum(axis=0), start),
            "jar_voltage_v": jar["voltage_v"], "jar_temperature_c": jar["temperature_c"],
            "jar_resistance_uohm": jar["internal_resistance_mohm"], "jar_soh_pct": jar["soh_pct"],
            "jar_soc_pct": jar["soc_pct"],
        }
        return Tick(seq, time_s, values, active)

    def _encode(self, tick: Tick) -> Snapshot:
        units, start = self.layout.units, self.string_start
        registers = np.zeros((units, table_size("input")), dtype=np.uint16)
        for field in fields("input"):
            self._place(registers, field, encode_words(tick.values[field.name], field.kind, field.scale))
        bits = np.zeros((units, table_size("discrete")), dtype=bool)
        for index, rule in enumerate(RULES):
            bits[:, index] = np.logical_or.reduceat(tick.active[index], start)[:units]
            if not rule.per_string:
                bits[self.jar_unit, JAR_BLOCK_SPACING * (index + 1) + self.jar_offset] = tick.active[index][self.jars]
        return Snapshot(tick.seq, registers, bits)

    def _place(self, registers: np.ndarray, field: Field, words: np.ndarray) -> None:
        if field.per_jar:
            registers[self.jar_unit, field.address + self.jar_offset] = words[self.jars, 0]
        else:
            registers[:, field.address: field.address + field.words] = words[: self.layout.units]

    def _identification(self) -> np.ndarray:
        fleet, world, units = self.session.fleet, self.session.world, self.layout.units
        registers = np.zeros((units, table_size("holding")), dtype=np.uint16)
        for unit in range(units):
            first = int(self.string_start[unit])
            model = fleet.models[fleet.battery_model[first]]
            values = {"model": model.name, "string_id": fleet.string_ids[unit],
                      "site_id": fleet.site_ids[fleet.string_site[unit]], "jar_count": world.string_jars[unit],
                      "cells_per_jar": model.cells, "rated_capacity_ah": model.capacity_ah_c10,
                      "map_version": MAP_VERSION, "firmware_version": f"battsim {battsim.__version__}"}
            for field in fields("holding"):
                words = (encode_text(values[field.name], field.words) if field.kind == "text"
                         else encode_words([values[field.name]], field.kind, field.scale)[0])
                registers[unit, field.address: field.address + field.words] = words
        return registers

    # ------------------------------------------------------------------------------ controls
    def command(self, unit: int, coil: int, on: bool) -> None:
        """A control coil written: start (or abandon) what it controls."""
        session, fleet = self.session, self.session.fleet
        if coil == OHMIC_COIL and on:
            session.world.monitoring.due.add(int(fleet.string_site[unit]))
        elif coil == CAPACITY_COIL:
            running = unit in session.world.capacity_tests
            if on and not running:
                session.scenarios.apply("capacity_test", strings=[fleet.string_ids[unit]], source="modbus")
            elif not on and running:
                session.scenarios.clear(strings=[fleet.string_ids[unit]], name="capacity_test")
        session.wake()


class DeviceHub:
    """The live session the devices serve (the one started last), as an attachment factory."""

    def __init__(self):
        self.source: DeviceSource | None = None
        # Called with (source, event) for every event of the session served, and with (source) once its tick's
        # readings are in (an alarm's event comes just before the readings of its tick), on the event loop.
        self.event_listeners: list[Callable[[DeviceSource, Event], None]] = []
        self.tick_listeners: list[Callable[[DeviceSource], None]] = []

    def __call__(self, session: LiveSession) -> DeviceSource:
        self.source = DeviceSource(self, session)
        return self.source

    def detach(self, source: DeviceSource) -> None:
        if self.source is source:
            self.source = None
