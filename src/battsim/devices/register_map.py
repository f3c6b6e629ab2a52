"""The Modbus register map: one declarative table, from which the server, the docs and the CSV are made.

Laid out in the style of published monitor maps (monitoring-systems.md: the Albér/Liebert IntelliSlot map,
Robotina's one unit id per string): **one Modbus unit id per string**, the fleet's strings in order from unit
1 (up to 247, the last unit id Modbus allows). Within a unit:

- input registers (function 4): the string's measurements, then one block per jar quantity, the jar at
  1-based position p at the block's address + p - 1;
- discrete inputs (function 2): alarm bits, one per alarm rule for the string (any of its jars) and one per
  rule and jar;
- holding registers (function 3, read-only): identification;
- coils (functions 1, 5, 15): controls that start the monitor's ohmic test or a capacity test.

A value is stored as ``round(value × scale)``; a missing value (a module that does not answer, a jar never
ohmic-tested) as the type's "not available" code, the convention of SunSpec and most monitor maps. 32-bit
values take two registers, high word first. Text is ASCII, two characters per register, high byte first,
NUL-padded.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from battsim.engine.alarms import RULES
from battsim.engine.battery import MODE_NAMES

MAX_UNITS = 247  # unit ids 1-247 (Modbus application protocol v1.1b3, §4.1; 0 is broadcast)
MAX_JARS = 400  # SiteSpec.jars_per_string's limit: a per-jar block is at most this long
JAR_BLOCK_SPACING = 1000  # per-jar blocks start at multiples of this
MAP_VERSION = 1
TABLES = ("input", "discrete", "holding", "coil")
FUNCTION_CODES = {"input": "04", "discrete": "02", "holding": "03", "coil": "01/05/15"}
# "Not available" codes (SunSpec's): what a register holds when there is no value.
MISSING = {"uint16": 0xFFFF, "int16": 0x8000, "uint32": 0xFFFF_FFFF, "int32": 0x8000_0000}
WORDS = {"uint16": 1, "int16": 1, "enum": 1, "uint32": 2, "int32": 2, "bit": 1}


@dataclass(frozen=True)
class Field:
    """One entry of the map: ``words`` registers (or one bit) at ``address``, or one per jar from there."""

    table: str  # input | discrete | holding | coil
    address: int
    name: str
    kind: str  # uint16 | int16 | uint32 | int32 | enum | text | bit
    description: str
    unit: str = ""
    scale: float = 1.0
    per_jar: bool = False
    text_words: int = 0  # registers of a text field
    measured: bool = False  # a measurement, which can be missing (then the type's "not available" code)

    @property
    def words(self) -> int:
        return self.text_words if self.kind == "text" else WORDS[self.kind]


_MODES = ", ".join(f"{index} {name}" for index, name in enumerate(MODE_NAMES))


def _jar_block(index: int) -> int:
    return JAR_BLOCK_SPACING * (index + 1)


_STRING_INPUTS = (
    Field("input", 0, "tick_seq", "uint32", "Sequence number of the tick these values are from (the WebSocket "
          "frame's seq); the same in every register of one tick, so a poller reading in several requests can tell "
          "whether they span a tick"),
    Field("input", 2, "tick_time", "uint32", "Time of that tick, seconds since the Unix epoch, UTC", "s"),
    Field("input", 4, "string_voltage_v", "uint32", "String voltage", "V", 100, measured=True),
    Field("input", 6, "string_current_a", "int32", "String current from its Hall sensor, + charge / − discharge",
          "A", 100, measured=True),
    Field("input", 8, "mode", "enum", f"Rectifier mode: {_MODES}"),
    Field("input", 9, "string_soc_pct", "uint16", "State of charge of the string's emptiest jar", "%", 100,
          measured=True),
    Field("input", 10, "string_soh_pct", "uint16", "State of health of the string's weakest jar", "%", 100,
          measured=True),
    Field("input", 11, "ambient_c", "int16", "Battery-room air temperature (the site's room probe)", "°C",
          10, measured=True),
    Field("input", 12, "ripple_current_a", "uint16", "AC ripple current through the string, rms", "A", 100,
          measured=True),
    Field("input", 13, "ripple_voltage_v", "uint16", "AC ripple voltage across the string, rms", "V", 1000,
          measured=True),
    Field("input", 14, "jar_count", "uint16", "Jars in the string: the length of each per-jar block"),
    Field("input", 15, "active_alarms", "uint16", "Alarms active on the string and its jars"),
)
_JAR_INPUTS = (
    Field("input", _jar_block(0), "jar_voltage_v", "uint16", "Jar (block) voltage", "V", 1000, per_jar=True,
          measured=True),
    Field("input", _jar_block(1), "jar_temperature_c", "int16", "Jar temperature (negative post)", "°C", 10,
          per_jar=True, measured=True),
    Field("input", _jar_block(2), "jar_resistance_uohm", "uint16", "Ohmic resistance from the monitor's last ohmic "
          "test (not available before the first)", "µΩ", 1000, per_jar=True, measured=True),
    Field("input", _jar_block(3), "jar_soh_pct", "uint16", "Jar state of health as the monitor estimates it", "%",
          100, per_jar=True, measured=True),
    Field("input", _jar_block(4), "jar_soc_pct", "uint16", "Jar state of charge as the monitor estimates it", "%",
          100, per_jar=True, measured=True),
)
# Discrete input 0-6: the string has rule r active (on any jar); block r+1: per jar.
_ALARMS = tuple(
    Field("discrete", index, f"alarm_{rule.name}", "bit", f"{rule.description} ({rule.severity}), on the string or "
          "any of its jars") for index, rule in enumerate(RULES)
) + tuple(
    Field("discrete", _jar_block(index), f"jar_alarm_{rule.name}", "bit", f"{rule.description} ({rule.severity}), "
          "this jar", per_jar=True) for index, rule in enumerate(RULES) if not rule.per_string
)
_IDENTIFICATION = (
    Field("holding", 0, "model", "text", "Battery model of the string's jars", text_words=16),
    Field("holding", 16, "string_id", "text", "String id (as in the REST API and recordings)", text_words=20),
    Field("holding", 36, "site_id", "text", "Site id", text_words=20),
    Field("holding", 56, "jar_count", "uint16", "Jars in the string"),
    Field("holding", 57, "cells_per_jar", "uint16", "Cells in series in one jar"),
    Field("holding", 58, "rated_capacity_ah", "uint16", "Rated capacity of a jar at the 10-hour rate", "Ah", 10),
    Field("holding", 59, "map_version", "uint16", "Version of this register map"),
    Field("holding", 60, "firmware_version", "text", "Firmware: battsim's version", text_words=8),
)
_CONTROLS = (
    Field("coil", 0, "ohmic_test", "bit", "Write 1: the monitor runs its ohmic test of the unit's site at the next "
          "tick (each string there that rests on float with its input up), as its schedule does; reads 1 until "
          "it has run"),
    Field("coil", 1, "capacity_test", "bit", "Write 1: a capacity test of the string (the capacity_test scenario, "
          "default parameters); reads 1 while it runs; write 0 while it runs: abandon it"),
)

MAP: tuple[Field, ...] = _STRING_INPUTS + _JAR_INPUTS + _ALARMS + _IDENTIFICATION + _CONTROLS


def fields(table: str) -> tuple[Field, ...]:
    return tuple(field for field in MAP if field.table == table)


def table_size(table: str) -> int:
    """Registers (or bits) a unit's table spans: past its last field, its per-jar blocks at full length."""
    return max(field.address + (MAX_JARS if field.per_jar else field.words) for field in fields(table))


def rows() -> list[dict]:
    """The map as rows (the CSV's and the docs table's), in table and address order."""
    out = []
    for table in TABLES:
        for field in sorted(fields(table), key=lambda f: f.address):
            last = field.address + field.words - 1
            out.append({
                "table": table, "function": FUNCTION_CODES[table],
                "address": field.address, "registers": f"{field.address}-{last}" if last > field.address else str(field.address),
                "name": field.name, "type": field.kind, "unit": field.unit,
                "scale": f"{field.scale:g}" if field.kind not in ("text", "bit", "enum") else "",
                "per_jar": field.per_jar,
                "missing": f"0x{MISSING[field.kind]:X}" if field.measured else "",
                "description": field.description,
            })
    return out


def map_csv() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows()[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows())
    return buffer.getvalue()


def markdown() -> str:
    """docs/modbus-map.md: the map as tables, one per Modbus table (tools/modbus_map.py writes it)."""
    lines = [
        "# Modbus TCP register map",
        "",
        "<!-- Generated from src/battsim/devices/register_map.py by `python tools/modbus_map.py`; do not edit. -->",
        "",
        f"Map version {MAP_VERSION}. One unit id per string: the fleet's strings in order from unit 1 (the order of "
        "the recording's `strings` table; holding registers 16-35 give each unit's string id), at most "
        f"{MAX_UNITS}; any other unit id answers exception 0x0B. Addresses are 0-based (the PDU's). A per-jar entry "
        "holds the jar at position p (1-based) at address + p - 1, for p up to `jar_count`; reading past it is an "
        "illegal address. A value is "
        "`round(value × scale)`; 32-bit values take two registers, high word first; text is ASCII, two characters "
        "per register, high byte first, NUL-padded. \"Missing\" is what the register holds when there is no value "
        "(a module that does not answer, no ohmic test yet). Bits are served in 16-bit words: a read of coils or "
        "discrete inputs is refused (0x02) only when a word it touches holds no defined bit. The same table as CSV: "
        "`GET /api/v1/modbus/map`.",
        "",
    ]
    titles = {"input": "Input registers (function 04): measurements", "discrete": "Discrete inputs (function 02): alarms",
              "holding": "Holding registers (function 03, read-only): identification",
              "coil": "Coils (functions 01, 05, 15): controls"}
    for table in TABLES:
        lines += [f"## {titles[table]}", "", "| address | name | type | unit | scale | per jar | missing | description |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in (r for r in rows() if r["table"] == table):
            lines.append(f"| {row['registers']} | `{row['name']}` | {row['type']} | {row['unit']} | {row['scale']} | "
                         f"{'yes' if row['per_jar'] else ''} | {row['missing']} | {row['description']} |")
        lines.append("")
    return "\n".join(lines)
