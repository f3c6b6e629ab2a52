"""SNMP agent over the live world (pysnmp, asyncio): RFC 7577 BATTERY-MIB, the battery group of RFC 1628
UPS-MIB, and BATTERY-MIB notifications for alarms.

Each string is one battery of the BATTERY-MIB's ``batteryTable`` (RFC 7577 §3: a battery is indexed by its
entity; the string's jars are its cells, named by ``batteryCellIdentifier``), at index n for the fleet's string n
(the Modbus unit id). Community ``public`` (or ``--snmp-community``) reads the whole table; ``public@n``
(community-string indexing, as many agents of multi-battery systems do) reads string n alone, its row and the
UPS-MIB ``upsBattery`` scalars, since those describe one battery. Values come from the tick the Modbus registers
hold (devices/snapshot.py), encoded once per tick into a sorted table of instances: a GET is a lookup, a
GETNEXT/GETBULK a bisection, and one request is always one tick. Every object is read-only; a missing reading
(a module that does not answer) leaves its instance out.

Alarm raises become notifications (SNMPv2c traps) to every configured receiver: ``high_temperature`` and
``above_ambient`` a ``batteryTemperatureNotification``, ``low_float_voltage`` a ``batteryLowNotification``, each
naming the jar in ``batteryCellIdentifier``; ``on_battery`` raised and cleared a
``batteryChargingStateNotification``. As RFC 7577 asks (§4, batteryTemperatureNotification), a notification is
not sent again for the same battery or cell within 10 minutes (wall clock: the receiver's), and a new session
(the monitor reinitialised) starts afresh; beyond that at most :data:`MAX_TRAPS_PER_S` a second go out, the
rest are counted as dropped, so a fleet-wide event cannot flood a receiver.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import numpy as np
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    NotificationType,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    send_notification,
)
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi.instrum import AbstractMibInstrumController

import battsim
from battsim.devices.register_map import MAX_UNITS
from battsim.devices.snapshot import DeviceHub, DeviceSource
from battsim.engine.alarms import AlarmThresholds
from battsim.engine.battery import Mode

log = logging.getLogger(__name__)

MIB_2 = (1, 3, 6, 1, 2, 1)
BATTERY_MIB = MIB_2 + (233,)
BATTERY_ENTRY = BATTERY_MIB + (1, 1, 1)
UPS_BATTERY = MIB_2 + (33, 1, 2)
SYSTEM = MIB_2 + (1,)
NOTIFICATIONS = {
    "charging_state": BATTERY_MIB + (0, 1),
    "low": BATTERY_MIB + (0, 2),
    "temperature": BATTERY_MIB + (0, 4),
}
# Which alarm rule raises which notification (the others have no BATTERY-MIB notification that fits).
RULE_NOTIFICATION = {"high_temperature": "temperature", "above_ambient": "temperature",
                     "low_float_voltage": "low", "on_battery": "charging_state"}
RATE_LIMIT_S = 600.0  # RFC 7577: not again for the same battery or cell within 10 minutes
MAX_TRAPS_PER_S = 10
MAX_RECEIVERS = 8

# batteryEntry columns (RFC 7577 §4) served, by column number.
IDENTIFIER, FIRMWARE, TYPE, TECHNOLOGY, DESIGN_VOLTAGE, CELLS, DESIGN_CAPACITY = 1, 2, 3, 4, 5, 6, 7
ACTUAL_CAPACITY, OPER_STATE, ACTUAL_CHARGE, ACTUAL_VOLTAGE, ACTUAL_CURRENT, TEMPERATURE = 10, 13, 15, 16, 17, 18
ALARM_LOW_VOLTAGE, ALARM_HIGH_TEMPERATURE, CELL_IDENTIFIER = 20, 23, 25
RECHARGEABLE = 4  # batteryType
VALVE_REGULATED_LEAD_ACID_AGM = 14  # batteryTechnology (IANA's registry of RFC 7577 §5)
# batteryChargingOperState by rectifier mode: float maintains the charge, boost/equalize charge, discharge
# discharges; a disconnected string is neither charged nor discharged.
OPER_STATE_OF_MODE = {Mode.FLOAT: 3, Mode.BOOST: 2, Mode.EQUALIZE: 2, Mode.DISCHARGE: 5, Mode.DISCONNECTED: 4}
OPER_STATES = np.array([OPER_STATE_OF_MODE[mode] for mode in Mode])
NOMINAL_V_PER_CELL = 2.0
# upsBatteryStatus (RFC 1628): 2 batteryNormal, 3 batteryLow, 4 batteryDepleted.
BATTERY_NORMAL, BATTERY_LOW, BATTERY_DEPLETED = 2, 3, 4


@dataclass(frozen=True)
class Receiver:
    host: str
    port: int


def parse_receiver(text: str) -> Receiver:
    """``host:port`` (port 162 if left out; an IPv6 address in brackets); ValueError saying what is allowed."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest else "162"
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = text, "162"
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not a trap receiver: give host:port, e.g. 127.0.0.1:162 (port 1-65535)")
    return Receiver(host, int(port))


def _table(source: DeviceSource) -> tuple[list[tuple[int, ...]], dict]:
    """Every instance of the served MIBs for the source's newest tick: sorted OIDs, and OID -> value."""
    tick = source.tick()
    session, units = source.session, source.layout.units
    fleet, world = session.fleet, session.world
    values: dict[tuple[int, ...], object] = {
        SYSTEM + (1, 0): rfc1902.OctetString(f"battsim {battsim.__version__}: simulated battery monitor, "
                                             f"{fleet.spec.name}, {units} strings"),
        SYSTEM + (2, 0): rfc1902.ObjectIdentifier(BATTERY_MIB),
        SYSTEM + (3, 0): rfc1902.TimeTicks(int((time.monotonic() - source.started_monotonic) * 100) % 2**32),
        SYSTEM + (5, 0): rfc1902.OctetString(fleet.spec.name),
    }
    thresholds = AlarmThresholds()
    for unit in range(units):
        first = int(source.string_start[unit])
        model = fleet.models[fleet.battery_model[first]]
        jars = int(world.string_jars[unit])
        cells = model.cells * jars
        design_mah = model.capacity_ah_c10 * 1000
        row = {
            IDENTIFIER: rfc1902.OctetString(fleet.string_ids[unit]),
            FIRMWARE: rfc1902.OctetString(f"battsim {battsim.__version__}"),
            TYPE: rfc1902.Integer32(RECHARGEABLE), TECHNOLOGY: rfc1902.Unsigned32(VALVE_REGULATED_LEAD_ACID_AGM),
            DESIGN_VOLTAGE: rfc1902.Unsigned32(round(NOMINAL_V_PER_CELL * cells * 1000)),
            CELLS: rfc1902.Unsigned32(cells), DESIGN_CAPACITY: rfc1902.Unsigned32(round(design_mah)),
            ALARM_LOW_VOLTAGE: rfc1902.Unsigned32(round(thresholds.low_float_v_per_cell * cells * 1000)),
            ALARM_HIGH_TEMPERATURE: rfc1902.Integer32(round(thresholds.high_temperature_c * 10)),
            CELL_IDENTIFIER: rfc1902.OctetString(source.last_cell.get(unit, "")),
        }
        if tick is not None:
            v = {name: float(array[unit]) for name, array in tick.values.items() if len(array) == len(fleet.string_ids)}
            row[OPER_STATE] = rfc1902.Integer32(int(OPER_STATES[int(v["mode"])]))
            measured = {
                ACTUAL_CAPACITY: (rfc1902.Unsigned32, design_mah * v["string_soh_pct"] / 100),
                ACTUAL_CHARGE: (rfc1902.Unsigned32, design_mah * v["string_soh_pct"] / 100 * v["string_soc_pct"] / 100),
                ACTUAL_VOLTAGE: (rfc1902.Unsigned32, v["string_voltage_v"] * 1000),
                ACTUAL_CURRENT: (rfc1902.Integer32, v["string_current_a"] * 1000),
                TEMPERATURE: (rfc1902.Integer32, v["string_max_temperature_c"] * 10),
            }
            for column, (kind, value) in measured.items():
                if np.isfinite(value):
                    row[column] = kind(round(value))
        for column, value in row.items():
            values[BATTERY_ENTRY + (column, unit + 1)] = value
    return sorted(values), values


def _ups_battery(source: DeviceSource, unit: int) -> dict:
    """RFC 1628's upsBattery scalars for one string (its context), from the same tick."""
    tick = source.tick()
    if tick is None:
        return {}
    v = {name: float(array[unit]) for name, array in tick.values.items()
         if len(array) == len(source.session.fleet.string_ids)}
    first, last = int(source.string_start[unit]), int(source.string_start[unit] + v["jar_count"])
    low = bool(tick.active[source.low_float_rule, first:last].any())
    status = BATTERY_DEPLETED if int(v["mode"]) == Mode.DISCONNECTED else BATTERY_LOW if low else BATTERY_NORMAL
    scalars = {1: rfc1902.Integer32(status)}
    for index, value in ((4, v["string_soc_pct"]), (5, v["string_voltage_v"] * 10), (6, v["string_current_a"] * 10),
                         (7, v["string_max_temperature_c"])):
        if np.isfinite(value):
            scalars[index] = rfc1902.Integer32(round(value))
    return {UPS_BATTERY + (index, 0): value for index, value in scalars.items()}


class FleetMib(AbstractMibInstrumController):
    """The instances one community sees: the whole batteryTable (``unit`` None) or one string's row and UPS-MIB."""

    def __init__(self, agent: SnmpAgent, unit: int | None):
        self.agent, self.unit = agent, unit

    def _instances(self) -> tuple[list[tuple[int, ...]], dict]:
        source = self.agent.hub.source
        if source is None or (self.unit is not None and self.unit >= source.layout.units):
            return [], {}
        oids, values = self.agent.table(source)
        if self.unit is None:
            return oids, values
        row = {oid: value for oid, value in values.items()
               if oid[:len(BATTERY_ENTRY)] != BATTERY_ENTRY or oid[-1] == self.unit + 1}
        row.update(_ups_battery(source, self.unit))
        return sorted(row), row

    def read_variables(self, *var_binds, **context):
        _, values = self._instances()
        return [(name, values.get(tuple(name), rfc1905.noSuchInstance)) for name, _ in var_binds]

    def read_next_variables(self, *var_binds, **context):
        oids, values = self._instances()
        answer = []
        for name, _ in var_binds:
            at = bisect.bisect_right(oids, tuple(name))
            answer.append((oids[at], values[oids[at]]) if at < len(oids) else (name, rfc1905.endOfMibView))
        return answer


@dataclass
class TrapSender:
    """Alarm events of the served session as notifications, rate-limited (see the module docstring)."""

    agent: SnmpAgent
    receivers: list[Receiver]
    community: str
    clock: Callable[[], float] = time.monotonic
    sent: int = 0
    suppressed: int = 0
    dropped: int = 0
    failed: int = 0
    _last: dict = field(default_factory=dict)  # (source id, notification, unit, cell) -> when it was last sent
    _recent: deque = field(default_factory=deque)  # times of the traps sent in the last second
    _pending: list = field(default_factory=list)  # (notification, unit) raised by the tick being measured
    _tasks: set = field(default_factory=set)

    def __call__(self, source: DeviceSource, event) -> None:
        if event.kind not in ("alarm_raised", "alarm_cleared") or event.string_id is None:
            return
        backfill = source.session.backfill
        if backfill is not None and not backfill.done:  # history, as the WebSocket's alerts: recorded, not sent
            return
        rule = event.detail.get("rule")
        notification = RULE_NOTIFICATION.get(rule)
        if notification is None or (event.kind == "alarm_cleared" and notification != "charging_state"):
            return
        unit = source.session.fleet.string_ids.index(event.string_id)
        if unit >= source.layout.units:
            return
        if event.battery_id is not None:
            source.last_cell[unit] = event.battery_id
        now = self.clock()
        key = (id(source), notification, unit, event.battery_id)
        if now - self._last.get(key, -RATE_LIMIT_S) < RATE_LIMIT_S:
            self.suppressed += 1
            return
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= MAX_TRAPS_PER_S:
            self.dropped += 1
            return
        self._last[key] = now
        self._recent.append(now)
        self._pending.append((notification, unit))

    def flush(self, source: DeviceSource) -> None:
        """The alarms of the tick just in: their notifications, with that tick's values."""
        pending, self._pending = self._pending, []
        for notification, unit in pending:
            var_binds = self._var_binds(source, notification, unit)
            for receiver in self.receivers:
                task = asyncio.get_running_loop().create_task(self._send(receiver, notification, var_binds))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _var_binds(self, source: DeviceSource, notification: str, unit: int) -> list:
        _, values = self.agent.table(source)
        columns = {"charging_state": (OPER_STATE,), "low": (ACTUAL_CHARGE, ACTUAL_VOLTAGE, CELL_IDENTIFIER),
                   "temperature": (TEMPERATURE, CELL_IDENTIFIER)}[notification]
        oids = [BATTERY_ENTRY + (column, unit + 1) for column in columns]
        return [ObjectType(ObjectIdentity(oid), values[oid]) for oid in oids if oid in values]

    async def _send(self, receiver: Receiver, notification: str, var_binds: list) -> None:
        try:
            target = await UdpTransportTarget.create((receiver.host, receiver.port), timeout=1, retries=0)
            error, *_ = await send_notification(
                self.agent.trap_engine, CommunityData(self.community, mpModel=1), target, ContextData(), "trap",
                NotificationType(ObjectIdentity(NOTIFICATIONS[notification])).add_varbinds(*var_binds))
        except Exception:  # a receiver that cannot be reached must not stop the others, or the simulation
            log.warning("SNMP trap to %s:%d failed", receiver.host, receiver.port, exc_info=True)
            self.failed += 1
            return
        if error:
            log.warning("SNMP trap to %s:%d failed: %s", receiver.host, receiver.port, error)
            self.failed += 1
        else:
            self.sent += 1


class SnmpAgent:
    """The agent's engine, its contexts (one per community), and the per-tick table cache."""

    def __init__(self, hub: DeviceHub, community: str = "public", receivers: list[Receiver] | None = None):
        self.hub = hub
        self.community = community
        self.engine = engine.SnmpEngine()
        self.trap_engine = SnmpEngine()
        self.traps = TrapSender(self, list(receivers or []), community)
        self._cached: tuple = (None, None, None)
        snmp_context = context.SnmpContext(self.engine)
        config.add_v1_system(self.engine, "battsim", community)
        snmp_context.unregister_context_name(b"")  # the default context: replaced by the fleet's
        snmp_context.register_context_name(b"", FleetMib(self, None))
        for unit in range(MAX_UNITS):
            name = f"string{unit + 1}"
            config.add_v1_system(self.engine, f"battsim-{unit + 1}", f"{community}@{unit + 1}", contextName=name)
            snmp_context.register_context_name(name.encode(), FleetMib(self, unit))
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder, cmdrsp.BulkCommandResponder):
            responder(self.engine, snmp_context)

    def table(self, source: DeviceSource) -> tuple[list, dict]:
        """The instances of the source's newest tick, built once per tick (sysUpTime is of that moment)."""
        tick = source.tick()
        key = (id(source), tick.seq if tick is not None else None)
        if self._cached[0] != key:
            self._cached = (key, *_table(source))
        return self._cached[1], self._cached[2]

    def listen(self, host: str, port: int) -> None:
        config.add_transport(self.engine, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode((host, port)))
        self.hub.event_listeners.append(self.traps)
        self.hub.tick_listeners.append(self.traps.flush)

    def close(self) -> None:
        if self.traps in self.hub.event_listeners:
            self.hub.event_listeners.remove(self.traps)
            self.hub.tick_listeners.remove(self.traps.flush)
        self.engine.close_dispatcher()
        self.trap_engine.close_dispatcher()


@asynccontextmanager
async def snmp_listener(hub: DeviceHub, host: str, port: int, community: str = "public",
                        receivers: list[Receiver] | None = None) -> AsyncIterator[SnmpAgent]:
    """An SNMP agent on UDP ``host``:``port`` for as long as the context lasts (in the running event loop)."""
    agent = SnmpAgent(hub, community, receivers)
    agent.listen(host, port)
    try:
        yield agent
    finally:
        agent.close()
