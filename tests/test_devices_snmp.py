"""The live fleet over SNMP: pysnmp's own manager against the agent on 127.0.0.1 (UDP), and a trap listener.

GET and WALK of the BATTERY-MIB table and the UPS-MIB battery group during an outage (values equal the
Modbus registers of the same tick), and the batteryChargingStateNotification the outage raises, received by
a plain UDP socket and decoded with pysnmp's codec, sent once within the RFC's 10 minutes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pyasn1.codec.ber import decoder
from pymodbus.client import ModbusTcpClient
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    walk_cmd,
)
from pysnmp.proto import api

from battsim.devices.modbus import modbus_listener
from battsim.devices.snapshot import DeviceHub
from battsim.devices.snmp import BATTERY_ENTRY, NOTIFICATIONS, UPS_BATTERY, Receiver, parse_receiver, snmp_listener
from test_service_helpers import WAIT_S, battsim_command, free_port, json_once_listening, serve, wait_until

START = {"preset": "thailand-9x24", "interval_seconds": 5, "speed": 60, "seed": 3,
         "start": "2026-04-01T06:00:00+07:00"}
BKK = 4  # the fourth string of thailand-9x24: index 4 in batteryTable, Modbus unit 4
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


def oid(*parts) -> str:
    return ".".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    hub, snmp_port, modbus_port = DeviceHub(), free_port(), free_port()
    traps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    traps.bind(("127.0.0.1", 0))
    traps.settimeout(WAIT_S)
    receiver = Receiver("127.0.0.1", traps.getsockname()[1])
    listeners = [lambda: snmp_listener(hub, "127.0.0.1", snmp_port, receivers=[receiver]),
                 lambda: modbus_listener(hub, "127.0.0.1", modbus_port)]
    with serve(tmp_path_factory.mktemp("recordings"), attachments=[hub], listeners=listeners) as server:
        assert server.http.post("/api/v1/simulation/start", json=START).status_code == 200
        wait_until(lambda: hub.source is not None and hub.source.tick() is not None)
        modbus = ModbusTcpClient("127.0.0.1", port=modbus_port, timeout=WAIT_S)
        assert modbus.connect()
        try:
            yield server, snmp_port, traps, modbus, hub
        finally:
            modbus.close()
            traps.close()


async def _get(port: int, community: str, oids: list[str]):
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=5, retries=2)
        error, status, _, var_binds = await get_cmd(engine, CommunityData(community, mpModel=1), target, ContextData(),
                                                    *(ObjectType(ObjectIdentity(o)) for o in oids))
    finally:
        engine.close_dispatcher()
    assert error is None and not status, (error, status)
    return {str(name): value for name, value in var_binds}


async def _walk(port: int, community: str, root: str):
    engine, rows = SnmpEngine(), []
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=5, retries=2)
        async for error, status, _, var_binds in walk_cmd(engine, CommunityData(community, mpModel=1), target,
                                                          ContextData(), ObjectType(ObjectIdentity(root)),
                                                          lexicographicMode=False):
            assert error is None and not status, (error, status)
            rows.extend((tuple(name), value) for name, value in var_binds)
    finally:
        engine.close_dispatcher()
    return rows


def get(port, oids, community="public"):
    return asyncio.run(_get(port, community, oids))


def walk(port, root, community="public"):
    return asyncio.run(_walk(port, community, root))


def decode_trap(data: bytes) -> dict:
    version = int(api.decodeMessageVersion(data))
    module = api.PROTOCOL_MODULES[version]
    message, _ = decoder.decode(data, asn1Spec=module.Message())
    assert module.apiMessage.get_community(message) == b"public"
    pdu = module.apiMessage.get_pdu(message)
    return {tuple(name): value for name, value in module.apiPDU.get_varbinds(pdu)}


def s32(registers):
    value = (registers[0] << 16) | registers[1]
    return value - (1 << 32) if value & 0x8000_0000 else value


def test_an_outage_is_served_and_trapped_once(agent):
    server, port, traps, modbus, hub = agent
    applied = server.http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "site_ids": ["BKK_DC1"]})
    assert applied.status_code == 200
    data, _ = traps.recvfrom(65_535)
    trap = decode_trap(data)
    assert tuple(trap[SNMP_TRAP_OID]) == NOTIFICATIONS["charging_state"]
    assert int(trap[BATTERY_ENTRY + (13, BKK)]) == 5  # batteryChargingOperState discharging(5)

    assert server.http.post("/api/v1/simulation/pause").status_code == 200
    try:
        seq = modbus.read_input_registers(0, count=2, device_id=BKK).registers
        current = s32(modbus.read_input_registers(6, count=2, device_id=BKK).registers)
        voltage = modbus.read_input_registers(4, count=2, device_id=BKK).registers
        entry = oid(*BATTERY_ENTRY)
        values = get(port, [f"{entry}.1.{BKK}", f"{entry}.13.{BKK}", f"{entry}.16.{BKK}", f"{entry}.17.{BKK}",
                            f"{entry}.6.{BKK}", f"{entry}.13.1"])
        ups = dict(walk(port, oid(*UPS_BATTERY), community=f"public@{BKK}"))
        assert modbus.read_input_registers(0, count=2, device_id=BKK).registers == seq  # the same tick throughout
    finally:
        server.http.post("/api/v1/simulation/resume")
    assert str(values[f"{entry}.1.{BKK}"]) == "BKK_DC1_SYS01_STR01"
    assert int(values[f"{entry}.13.{BKK}"]) == 5 and int(values[f"{entry}.13.1"]) == 3  # discharging, float
    assert int(values[f"{entry}.17.{BKK}"]) == current * 10 < 0  # mA, from the Modbus register's A × 100
    assert int(values[f"{entry}.16.{BKK}"]) == ((voltage[0] << 16) | voltage[1]) * 10  # mV from V × 100
    assert int(values[f"{entry}.6.{BKK}"]) == 24 * 6
    assert int(ups[UPS_BATTERY + (6, 0)]) == round(current / 10) < 0  # upsBatteryCurrent, 0.1 A
    assert int(ups[UPS_BATTERY + (5, 0)]) == round((voltage[0] << 16 | voltage[1]) / 10)  # 0.1 V
    assert int(ups[UPS_BATTERY + (1, 0)]) in (2, 3) and 0 < int(ups[UPS_BATTERY + (4, 0)]) <= 100

    # Cleared within 10 minutes: the charging state changed back, but the RFC's rate limit holds the trap.
    suppressed = hub.event_listeners[0].suppressed
    assert server.http.post("/api/v1/scenarios/clear", json={"site_ids": ["BKK_DC1"]}).status_code == 200
    wait_until(lambda: hub.event_listeners[0].suppressed > suppressed)
    traps.settimeout(1.0)
    with pytest.raises(TimeoutError):
        traps.recvfrom(65_535)
    traps.settimeout(WAIT_S)


def test_a_walk_of_the_battery_table_is_ordered_and_ends(agent):
    _, port, _, _, _ = agent
    rows = walk(port, oid(*BATTERY_ENTRY))
    names = [name for name, _ in rows]
    assert names == sorted(names) and len(set(names)) == len(names)
    identifiers = [str(value) for name, value in rows if name[:-1] == BATTERY_ENTRY + (1,)]
    assert len(identifiers) == 9 and identifiers[3] == "BKK_DC1_SYS01_STR01"
    columns = sorted({name[len(BATTERY_ENTRY)] for name in names})
    assert columns == [1, 2, 3, 4, 5, 6, 7, 10, 13, 15, 16, 17, 18, 20, 23, 25]
    # One string's community sees its row only.
    own = walk(port, oid(*BATTERY_ENTRY), community="public@2")
    assert {name[-1] for name, _ in own} == {2}


def test_unknown_instances_and_communities(agent):
    _, port, _, _, _ = agent
    values = get(port, [oid(*BATTERY_ENTRY, 16, 10), oid(*BATTERY_ENTRY, 99, 1)])
    assert all(value.prettyPrint().startswith("No Such Instance") for value in values.values())
    # A community the agent does not know gets no answer at all (SNMPv2c: the request is dropped).
    with pytest.raises(AssertionError):
        asyncio.run(_get_once(port, "private"))
    # A string past the fleet's: its context is empty.
    assert walk(port, oid(*BATTERY_ENTRY), community="public@10") == []


async def _get_once(port: int, community: str):
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=0)
        error, *_ = await get_cmd(engine, CommunityData(community, mpModel=1), target, ContextData(),
                                  ObjectType(ObjectIdentity("1.3.6.1.2.1.1.1.0")))
    finally:
        engine.close_dispatcher()
    assert error is None, error


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:1162", Receiver("127.0.0.1", 1162)), ("trap.example", Receiver("trap.example", 162)),
    ("[::1]:2162", Receiver("::1", 2162)), ("[::1]", Receiver("::1", 162)),
])
def test_trap_receivers_parse(text, expected):
    assert parse_receiver(text) == expected


@pytest.mark.parametrize("text", ["", ":162", "host:0", "host:70000", "host:port", "[::1]x"])
def test_bad_trap_receivers_are_refused_saying_what_is_allowed(text):
    with pytest.raises(ValueError, match="host:port"):
        parse_receiver(text)


def test_battsim_serve_serves_the_boot_fleet_over_modbus_and_snmp_alike(tmp_path):
    """`battsim serve` with BATTSIM_MODBUS_PORT and --snmp-port: both agents read the one hub, so the same tick."""
    port, modbus_port, snmp_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path), "--preset", "single-string",
                             "--speed", "60", "--no-random-outages", "--snmp-port", str(snmp_port),
                             "--snmp-trap", "127.0.0.1:1162"],
        env={**os.environ, "BATTSIM_MODBUS_PORT": str(modbus_port)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: (s := json_once_listening(process, f"{base}/api/v1/simulation/status")) and s["ticks"])
        assert httpx.post(f"{base}/api/v1/simulation/pause", timeout=WAIT_S).status_code == 200
        modbus = ModbusTcpClient("127.0.0.1", port=modbus_port, timeout=WAIT_S)
        assert modbus.connect()
        try:
            voltage = modbus.read_input_registers(4, count=2, device_id=1).registers
        finally:
            modbus.close()
        entry = oid(*BATTERY_ENTRY)
        values = get(snmp_port, [f"{entry}.1.1", f"{entry}.16.1"])
        assert str(values[f"{entry}.1.1"]) == "BKK_DC1_SYS01_STR01"
        assert int(values[f"{entry}.16.1"]) == ((voltage[0] << 16) | voltage[1]) * 10 > 200_000  # mV, V × 100
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"127.0.0.1:{modbus_port}, unit id n = the fleet's string n" in output, output
    assert f"udp 127.0.0.1:{snmp_port}, community public (string n: public@n); traps to 127.0.0.1:1162" in output

def test_the_snmp_poller_example_walks_every_string(agent):
    """examples/snmp_poller.py, as docs/snmp.md runs it, against the running fleet."""
    _, port, _, _, _ = agent
    example = Path(__file__).resolve().parents[1] / "examples" / "snmp_poller.py"
    result = subprocess.run([sys.executable, str(example), "--port", str(port)], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 9 and lines[BKK - 1].startswith(f"battery   {BKK} BKK_DC1_SYS01_STR01"), result.stdout
    assert all(" V " in line and "hottest jar" in line for line in lines), result.stdout


def test_alarms_of_a_backfill_send_no_trap_and_live_ones_do(tmp_path):
    """A back-fill's alarms are history (recorded, like the WebSocket's alerts not sent); the live ones are traps."""
    hub, port = DeviceHub(), free_port()
    traps = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    traps.bind(("127.0.0.1", 0))
    receiver = Receiver("127.0.0.1", traps.getsockname()[1])
    try:
        with serve(tmp_path, attachments=[hub],
                   listeners=[lambda: snmp_listener(hub, "127.0.0.1", port, receivers=[receiver])]) as server:
            body = {"preset": "single-string", "interval_seconds": 5, "speed": 60, "backfill": "2h",
                    "scenario": "power_outage"}  # on battery from the back-fill's first tick: on_battery raised then
            assert server.http.post("/api/v1/simulation/start", json=body).status_code == 200
            wait_until(lambda: server.http.get("/api/v1/simulation/status").json()["backfill"]["state"] == "done")
            sender = hub.event_listeners[0]
            assert sender.sent == sender.suppressed == sender.dropped == 0
            traps.settimeout(1.0)
            with pytest.raises(TimeoutError):
                traps.recvfrom(65_535)
            assert server.http.post("/api/v1/scenarios/clear").status_code == 200  # live: back on its rectifier
            traps.settimeout(WAIT_S)
            trap = decode_trap(traps.recvfrom(65_535)[0])
            assert tuple(trap[SNMP_TRAP_OID]) == NOTIFICATIONS["charging_state"]
            assert int(trap[BATTERY_ENTRY + (13, 1)]) != 5  # no longer discharging
    finally:
        traps.close()
