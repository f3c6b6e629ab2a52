"""Modbus TCP server over the live world (pymodbus), with the map of devices/register_map.py.

pymodbus serves one ``SimDevice`` per unit id; its action hook fills the registers a request asks for from the
newest tick's :class:`~battsim.devices.snapshot.Snapshot` just before pymodbus answers, on the server's event
loop. The devices exist for every unit id from the start (a listener outlives sessions): a unit id past the
fleet's strings, or any while no simulation runs, answers exception 0x0B (gateway target device failed to
respond, what a gateway says of a device that is not there); an address outside the unit's map, 0x02
(illegal data address); a write to an identification register, 0x02 too (they are read-only). Function codes
the server does not implement get 0x01 from pymodbus itself. A read of 0 or more than the protocol's maximum
(125 registers, 2,000 bits) and a single-coil write of anything but 0x0000/0xFF00 get 0x03 (illegal data value),
as the protocol says (Modbus application protocol v1.1b3, §6.1-6.5); pymodbus alone would answer the first
with 0x01 and take any non-zero coil value as on, so those requests are decoded by the strict classes here.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest, WriteSingleCoilRequest
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import battsim
from battsim.devices.register_map import MAP_VERSION, MAX_UNITS, table_size
from battsim.devices.snapshot import DeviceHub, pack_bits

TABLE_OF_FUNCTION = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
                     22: "holding", 23: "holding", 4: "input"}


async def serve_request(hub: DeviceHub, unit_id: int, function_code: int, start_address: int, address: int,
                        count: int, registers: list[int], set_values: list | None) -> ExcCodes | None:
    """pymodbus's action for ``unit_id``: check the request, apply a control write, fill what is read."""
    source = hub.source
    table = TABLE_OF_FUNCTION.get(function_code)
    if source is None or not 1 <= unit_id <= source.layout.units or table is None:
        return ExcCodes.GATEWAY_NO_RESPONSE
    unit, bits = unit_id - 1, table in ("coil", "discrete")
    if set_values is not None:
        # pymodbus refuses writes to the read-only registers before asking; a write gives its exact bits.
        if table != "coil" or not source.layout.answers(table, unit, address, len(set_values)):
            return ExcCodes.ILLEGAL_ADDRESS
        for offset, value in enumerate(set_values):
            source.command(unit, address + offset, bool(value))
        return None
    # For a bit read pymodbus gives the count in words of 16 bits, not in bits: checked word by word.
    if not (source.layout.answers_words(table, unit, address // 16, count) if bits
            else source.layout.answers(table, unit, address, count)):
        return ExcCodes.ILLEGAL_ADDRESS
    if table == "holding":
        words = source.holding[unit]
    elif table == "coil":
        words = source.coils(unit)
    else:
        snapshot = source.snapshot()
        if snapshot is None:
            return ExcCodes.DEVICE_BUSY  # started, no tick simulated yet
        words = snapshot.input[unit] if table == "input" else snapshot.discrete[unit]
    if bits:
        first = address // 16
        registers[first - start_address: first + count - start_address] = pack_bits(words[first * 16:(first + count) * 16])
    else:
        registers[address - start_address: address - start_address + count] = words[address:address + count].tolist()
    return None


class _CountChecked:
    """A read whose count is checked when it is served (0x03), not when it is decoded (pymodbus's 0x01)."""

    MAX_COUNT: int

    def decode(self, data: bytes) -> None:
        self.address, self.count = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context, device_id: int) -> ModbusPDU:
        if not 1 <= self.count <= self.MAX_COUNT:
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
        return await super().datastore_update(context, device_id)


class StrictReadCoils(_CountChecked, ReadCoilsRequest):
    pass


class StrictReadDiscreteInputs(_CountChecked, ReadDiscreteInputsRequest):
    pass


class StrictReadHoldingRegisters(_CountChecked, ReadHoldingRegistersRequest):
    pass


class StrictReadInputRegisters(_CountChecked, ReadInputRegistersRequest):
    pass


class StrictWriteSingleCoil(WriteSingleCoilRequest):
    """A coil is written 0xFF00 (on) or 0x0000 (off); any other value is refused."""

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])
        self.bits = [self.value == 0xFF00]

    async def datastore_update(self, context, device_id: int) -> ModbusPDU:
        if self.value not in (0x0000, 0xFF00):
            return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
        return await super().datastore_update(context, device_id)


# What function 43/14 (read device identification) answers: the basic objects (Modbus spec §6.21).
IDENTITY = ModbusDeviceIdentification(info_name={
    "VendorName": "battsim", "ProductCode": "battsim-monitor", "MajorMinorRevision": battsim.__version__,
    "ProductName": "simulated battery monitor", "ModelName": f"register map {MAP_VERSION}"})

STRICT_REQUESTS = [StrictReadCoils, StrictReadDiscreteInputs, StrictReadHoldingRegisters, StrictReadInputRegisters,
                   StrictWriteSingleCoil]


def _bits(table: str) -> SimData:
    return SimData(0, count=-(-table_size(table) // 16), datatype=DataType.BITS)


def unit_device(hub: DeviceHub, unit_id: int) -> SimDevice:
    """The device behind one unit id (0: every unit id without its own device, 248-255 and 0 itself)."""
    return SimDevice(
        id=unit_id,
        simdata=([_bits("coil")], [_bits("discrete")],
                 [SimData(0, count=table_size("holding"), datatype=DataType.REGISTERS, readonly=True)],
                 [SimData(0, count=table_size("input"), datatype=DataType.REGISTERS)]),
        action=functools.partial(serve_request, hub, unit_id),
    )


@asynccontextmanager
async def modbus_listener(hub: DeviceHub, host: str, port: int) -> AsyncIterator[ModbusTcpServer]:
    """A Modbus TCP server on ``host``:``port`` for as long as the context lasts (in the running event loop)."""
    server = ModbusTcpServer([unit_device(hub, unit_id) for unit_id in range(MAX_UNITS + 1)], address=(host, port),
                             custom_pdu=STRICT_REQUESTS, identity=IDENTITY)
    await server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.shutdown()
