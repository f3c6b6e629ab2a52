"""The live fleet over Modbus TCP: pymodbus's own client against the server on 127.0.0.1 (issue 19).

Every block read while an outage runs equals the WebSocket's readings of the same tick; the control coils
start an ohmic test and a capacity test through the monitor's and the scenarios' own code; bad requests get
Modbus exception responses and the server goes on answering; a few clients polling the whole fleet at once
all get whole, consistent ticks.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient
from typer.testing import CliRunner

import battsim
from battsim.devices.modbus import modbus_listener
from battsim.devices.register_map import MAP_VERSION, MISSING, fields, map_csv, markdown, rows
from battsim.devices.snapshot import DeviceHub
from battsim.engine.battery import MODE_NAMES
from battsim.service import cli
from battsim.service.live import DEFAULT_SLOT
from test_service_helpers import WAIT_S, free_port, next_of, serve, wait_until

START = {"preset": "thailand-9x24", "interval_seconds": 5, "speed": 60, "seed": 3,
         "start": "2026-04-01T06:00:00+07:00"}
JARS = 24
ADDRESS = {field.name: field.address for field in fields("input")}
BKK_UNIT = 4  # thailand-9x24: one string per site, sites in THAI_SITES order; BKK_DC1 is the fourth


class Events:
    """An attachment that keeps the events a session emits (to see what a coil write started)."""

    def __init__(self, session):
        self.seen = []

    def readings(self, batch):
        pass

    def event(self, event):
        self.seen.append(event)

    def close(self):
        pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    hub, port, made = DeviceHub(), free_port(), []

    def events(session):
        made.append(Events(session))
        return made[-1]

    with serve(tmp_path_factory.mktemp("recordings"), attachments=[hub, events],
               listeners=[lambda: modbus_listener(hub, "127.0.0.1", port)]) as server:
        assert server.http.post("/api/v1/simulation/start", json=START).status_code == 200
        wait_until(lambda: hub.source is not None and hub.source.snapshot() is not None)
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=WAIT_S)
        assert client.connect()
        try:
            yield server, client, port, made[0]
        finally:
            client.close()


def u32(registers):
    return (registers[0] << 16) | registers[1]


def s32(registers):
    value = u32(registers)
    return value - (1 << 32) if value & 0x8000_0000 else value


def s16(register):
    return register - (1 << 16) if register & 0x8000 else register


def read(client, kind: str, address: int, count: int, unit: int):
    answer = getattr(client, f"read_{kind}")(address, count=count, device_id=unit)
    assert not answer.isError(), (kind, address, count, unit, answer)
    return answer.registers if kind.endswith("registers") else answer.bits[:count]


def read_unit(client, unit: int) -> dict:
    """Every block of one unit: string measurements, the five jar blocks, alarm bits, identification."""
    blocks = {"string": read(client, "input_registers", 0, 16, unit)}
    for name in ("jar_voltage_v", "jar_temperature_c", "jar_resistance_uohm", "jar_soh_pct", "jar_soc_pct"):
        blocks[name] = read(client, "input_registers", ADDRESS[name], JARS, unit)
    blocks["alarms"] = read(client, "discrete_inputs", 0, 7, unit)
    blocks["identification"] = read(client, "holding_registers", 0, 68, unit)
    return blocks


def expected(value, scale, kind="uint16"):
    return MISSING[kind] if value is None else round(value * scale)


def test_every_block_during_an_outage_equals_the_websocket_of_the_same_tick(world):
    server, client, _, _ = world
    with server.telemetry() as ws:
        applied = server.http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "site_ids": ["BKK_DC1"]})
        assert applied.status_code == 200
        seen = {}

        def keep(frame):
            seen[frame["seq"]] = frame
            return True

        next_of(ws, "telemetry", lambda f: keep(f) and any(r["site_id"] == "BKK_DC1" and r["mode"] == "discharge"
                                                           for r in f["data"]))
        assert server.http.post("/api/v1/simulation/pause").status_code == 200
        try:
            # Paused, the tick stays put; the seq read before and after the blocks proves they are one tick.
            seq = u32(read(client, "input_registers", 0, 2, 1))
            units = {unit: read_unit(client, unit) for unit in range(1, 10)}
            assert u32(read(client, "input_registers", 0, 2, 1)) == seq
            frame = seen.get(seq) or next_of(ws, "telemetry", lambda f: f["seq"] == seq)
        finally:
            server.http.post("/api/v1/simulation/resume")
            server.http.post("/api/v1/scenarios/clear", json={"site_ids": ["BKK_DC1"]})

    by_string = {}
    for reading in frame["data"]:
        by_string.setdefault(reading["string_id"], []).append(reading)
    for unit, blocks in units.items():
        string = blocks["string"]
        assert u32(string[0:2]) == seq
        identification = blocks["identification"]
        string_id = struct.pack(">20H", *identification[16:36]).rstrip(b"\0").decode()
        readings = by_string[string_id]
        assert len(readings) == JARS == string[ADDRESS["jar_count"]] == identification[56]
        assert identification[59] == MAP_VERSION
        assert string_id.startswith(struct.pack(">20H", *identification[36:56]).rstrip(b"\0").decode())
        assert s32(string[6:8]) == round(readings[0]["current_a"] * 100)
        assert MODE_NAMES[string[ADDRESS["mode"]]] == readings[0]["mode"]
        assert s16(string[ADDRESS["ambient_c"]]) == round(readings[0]["ambient_c"] * 10)
        assert blocks["jar_voltage_v"] == [expected(r["voltage_v"], 1000) for r in readings]
        assert [s16(t) for t in blocks["jar_temperature_c"]] == [
            s16(expected(r["temperature_c"], 10, "int16")) for r in readings]
        assert blocks["jar_resistance_uohm"] == [expected(r["internal_resistance_mohm"], 1000) for r in readings]
        assert blocks["jar_soh_pct"] == [expected(r["soh_pct"], 100) for r in readings]
        assert blocks["jar_soc_pct"] == [expected(r["soc_pct"], 100) for r in readings]
        assert string[ADDRESS["string_soh_pct"]] == min(blocks["jar_soh_pct"])
        on_battery = blocks["alarms"][6]
        if unit == BKK_UNIT:
            assert readings[0]["mode"] == "discharge" and s32(string[6:8]) < 0  # the string feeds the load
            assert on_battery and string[ADDRESS["active_alarms"]] >= 1
            assert u32(string[4:6]) < 24 * 12.8 * 100  # string voltage under load, below float
        else:
            assert readings[0]["mode"] != "discharge" and not on_battery


def test_the_ohmic_test_coil_runs_the_monitors_test_of_that_site(world):
    _, client, _, events = world
    unit = 2  # KKC_DC1; the monitor's own schedule tests at 03:00 local, a day away in virtual time
    wait_until(lambda: not read(client, "coils", 0, 1, unit)[0])  # the first scan's test is done
    before = len(events.seen)
    assert not client.write_coil(0, True, device_id=unit).isError()
    wait_until(lambda: not read(client, "coils", 0, 1, unit)[0])
    tests = [e for e in events.seen[before:] if e.kind == "ohmic_test"]
    assert [e.site_id for e in tests] == ["KKC_DC1"]
    assert tests[0].detail["strings"] == ["KKC_DC1_SYS01_STR01"] and tests[0].detail["jars"] == JARS


def test_the_capacity_test_coil_discharges_the_string_and_writing_0_abandons_it(world):
    _, client, _, events = world
    unit = 7  # URT_DC1
    before = len(events.seen)
    assert not client.write_coil(1, True, device_id=unit).isError()
    wait_until(lambda: read(client, "coils", 1, 1, unit)[0])
    wait_until(lambda: read(client, "input_registers", ADDRESS["mode"], 1, unit)[0] == MODE_NAMES.index("discharge"))
    assert s32(read(client, "input_registers", 6, 2, unit)) < 0
    assert not client.write_coils(1, [False], device_id=unit).isError()
    wait_until(lambda: not read(client, "coils", 1, 1, unit)[0])
    states = [e.detail["state"] for e in events.seen[before:] if e.kind == "capacity_test"]
    assert states == ["started", "aborted"]
    assert {e.string_id for e in events.seen[before:] if e.kind == "capacity_test"} == {"URT_DC1_SYS01_STR01"}


def exception_of(answer):
    assert answer.isError(), answer
    return answer.exception_code


def raw_request(sock: socket.socket, unit: int, pdu: bytes, transaction: int) -> bytes:
    """One Modbus TCP request as bytes on the wire (for what pymodbus's client will not send); its answer's PDU."""
    sock.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu)
    header = b""
    while len(header) < 7:
        header += sock.recv(7 - len(header))
    answered, _, length, _ = struct.unpack(">HHHB", header)
    assert answered == transaction
    body = b""
    while len(body) < length - 1:
        body += sock.recv(length - 1 - len(body))
    return body


def test_bad_requests_get_exception_responses_and_the_server_goes_on(world):
    _, client, port, _ = world
    # Illegal data address (0x02): past the string's 24 jars, past a table, a read-only register written.
    assert exception_of(client.read_input_registers(ADDRESS["jar_voltage_v"], count=JARS + 1, device_id=1)) == 2
    assert exception_of(client.read_input_registers(16, count=1, device_id=1)) == 2
    assert exception_of(client.read_discrete_inputs(500, count=1, device_id=1)) == 2
    assert exception_of(client.read_holding_registers(60, count=9, device_id=1)) == 2
    assert exception_of(client.write_register(56, 12, device_id=1)) == 2
    assert exception_of(client.write_coils(1, [True, True], device_id=1)) == 2  # there is no coil 2
    # No such string (0x0B, gateway target failed to respond): unit 10 of nine strings, unit 0.
    assert exception_of(client.read_input_registers(0, count=2, device_id=10)) == 11
    assert exception_of(client.read_input_registers(0, count=2, device_id=0)) == 11
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        # A function code the server does not implement: 0x01 (illegal function).
        answer = raw_request(sock, 1, b"\x2a\x00\x00", 1)
        assert answer[0] & 0x80 and answer[1] == 1
        # Out of range: a coil written 0x1234 (only 0xFF00 and 0x0000 are allowed), 126 and 0 registers read.
        assert raw_request(sock, 1, b"\x05\x00\x01\x12\x34", 2) == b"\x85\x03"
        assert raw_request(sock, 1, b"\x04\x00\x00\x00\x7e", 3) == b"\x84\x03"
        assert raw_request(sock, 1, b"\x04\x00\x00\x00\x00", 4) == b"\x84\x03"
        assert raw_request(sock, 1, b"\x01\x00\x00\x07\xd1", 5) == b"\x81\x03"  # 2,001 coils
        # The same connection still answers.
        assert raw_request(sock, 1, b"\x04\x00\x0e\x00\x01", 6) == b"\x04\x02" + struct.pack(">H", JARS)
    assert not read(client, "coils", 1, 1, 1)[0]  # the refused write started nothing
    assert read(client, "input_registers", ADDRESS["jar_count"], 1, 9) == [JARS]


def test_device_identification_names_battsim(world):
    """Function 43/14 (read device identification), basic objects: vendor, product code, revision."""
    _, client, _, _ = world
    answer = client.read_device_information(device_id=1)
    assert not answer.isError(), answer
    assert answer.information[0] == b"battsim" and answer.information[1] == b"battsim-monitor"
    assert answer.information[2].decode() == battsim.__version__


def test_a_few_clients_polling_the_whole_fleet_get_whole_ticks(world):
    """The bounded version of bench/bench_modbus.py: 5 clients poll every unit's every block for 3 s."""
    _, _, port, _ = world
    failures, polls, seqs = [], [], set()
    stop = time.monotonic() + 3.0

    def poller():
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=WAIT_S)
        try:
            assert client.connect()
            while time.monotonic() < stop:
                for unit in range(1, 10):
                    before = u32(read(client, "input_registers", 0, 2, unit))
                    blocks = read_unit(client, unit)
                    after = u32(read(client, "input_registers", 0, 2, unit))
                    if before == after:  # one tick: its values are the string's, whole
                        assert u32(blocks["string"][0:2]) == before
                        assert blocks["string"][ADDRESS["jar_count"]] == JARS
                        assert all(9_000 < v < 16_000 for v in blocks["jar_voltage_v"] if v != MISSING["uint16"])
                    seqs.add(before)
                polls.append(1)
        except BaseException as error:  # reported by the test thread
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=poller) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S + 10)
    assert not failures, failures[0]
    assert len(polls) >= 5  # every client finished at least one full poll of the fleet
    assert len(seqs) > 1  # and the simulation moved on meanwhile


def test_the_map_is_served_as_csv_and_json_and_the_docs_are_current(world):
    server, _, _, _ = world
    answer = server.http.get("/api/v1/modbus/map")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.text == map_csv()
    lines = answer.text.splitlines()
    assert lines[0].startswith("table,function,address,registers,name,type,unit,scale,per_jar,missing")
    assert "input,04,1000,1000,jar_voltage_v,uint16,V,1000,True,0xFFFF" in answer.text
    assert len(lines) == len(rows()) + 1
    as_json = server.http.get("/api/v1/modbus/map?format=json").json()
    assert as_json["map_version"] == MAP_VERSION and as_json["rows"] == rows()
    refused = server.http.get("/api/v1/modbus/map?format=xml")
    assert refused.status_code == 422 and "format" in refused.text
    docs = Path(__file__).resolve().parents[1] / "docs" / "modbus-map.md"
    assert docs.read_text() == markdown() + "\n", "docs/modbus-map.md is stale: run python tools/modbus_map.py"


def test_no_simulation_no_answer(tmp_path):
    """A listener with nothing running answers every unit 0x0B, then serves a session once one starts."""
    hub, port = DeviceHub(), free_port()
    with serve(tmp_path, attachments=[hub], listeners=[lambda: modbus_listener(hub, "127.0.0.1", port)]) as server:
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=WAIT_S)
        assert client.connect()
        try:
            assert exception_of(client.read_input_registers(0, count=2, device_id=1)) == 11
            body = {**START, "preset": "single-string"}
            assert server.http.post("/api/v1/simulation/start", json=body).status_code == 200
            wait_until(lambda: not client.read_input_registers(0, count=2, device_id=1).isError())
            assert hub.source.session.slot == DEFAULT_SLOT
            assert exception_of(client.read_input_registers(0, count=2, device_id=2)) == 11  # one string only
            assert server.http.post("/api/v1/simulation/stop").status_code == 200
            assert exception_of(client.read_input_registers(0, count=2, device_id=1)) == 11
        finally:
            client.close()


@pytest.mark.parametrize(("flags", "named", "says"), [
    (["--modbus-port", "70000"], "--modbus-port", "outside 1-65535"),
    (["--modbus-port", "{busy}"], "--modbus-host/--modbus-port", "cannot listen on 127.0.0.1:"),
    (["--modbus-port", "{free}", "--modbus-host", "0.0.0.0"], "--modbus-host", "pass --insecure"),
    (["--snmp-port", "70000"], "--snmp-port", "outside 1-65535"),
    (["--snmp-port", "{busy_udp}"], "--snmp-host/--snmp-port", "cannot listen on 127.0.0.1:"),
    (["--snmp-port", "{free}", "--snmp-host", "0.0.0.0"], "--snmp-host", "pass --insecure"),
    (["--snmp-port", "{free}", "--snmp-trap", "receiver:port"], "--snmp-trap", "host:port"),
    (["--snmp-trap", "127.0.0.1:162"], "--snmp-trap", "needs the SNMP agent"),
    (["--snmp-port", "{free}", "--snmp-community", ""], "--snmp-community", "1-64 printable"),
])
def test_serve_refuses_bad_device_flags_naming_them(tmp_path, flags, named, says):
    with socket.socket() as busy, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy_udp:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_udp.bind(("127.0.0.1", 0))
        args = [flag.format(busy=busy.getsockname()[1], busy_udp=busy_udp.getsockname()[1], free=free_port())
                for flag in flags]
        result = CliRunner().invoke(cli.app, ["serve", "--port", str(free_port()), "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert f"error: {named}:" in result.output and says in result.output, result.output


def test_the_poller_example_reads_every_string(world):
    """examples/modbus_poller.py, as the README runs it, against the running fleet."""
    _, _, port, _ = world
    example = Path(__file__).resolve().parents[1] / "examples" / "modbus_poller.py"
    result = subprocess.run([sys.executable, str(example), "--port", str(port)], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 9, result.stdout
    assert lines[BKK_UNIT - 1].startswith(f"unit   {BKK_UNIT} BKK_DC1_SYS01_STR01")
    assert all(" V " in line and "jars 1" in line for line in lines), result.stdout
