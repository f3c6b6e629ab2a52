"""A DCIM-style poller: read every string of a battsim fleet over Modbus TCP, as from a real battery monitor.

    battsim serve --preset thailand-9x24 --modbus-port 5020 &
    python examples/modbus_poller.py --port 5020

For each unit id from 1 until one answers "no such device" (exception 0x0B), it reads the identification
(holding registers), the string's measurements and every jar's voltage (input registers) and the alarm bits
(discrete inputs), and prints one line per string. Only pymodbus is needed; the map it follows is
docs/modbus-map.md (or GET /api/v1/modbus/map as CSV). A poll reads the tick sequence number first and last,
and polls the unit again if a new tick arrived meanwhile, so each line is one tick's values.
"""

from __future__ import annotations

import argparse
import sys

from pymodbus.client import ModbusTcpClient

MODES = ("float", "boost", "equalize", "discharge", "disconnected")
ALARMS = ("high_temperature", "low_float_voltage", "sensor_fault", "above_ambient", "high_resistance", "low_soh",
          "on_battery")
NO_SUCH_UNIT = 0x0B
JAR_VOLTAGE = 1000


def text(registers: list[int]) -> str:
    return b"".join(r.to_bytes(2, "big") for r in registers).rstrip(b"\0").decode("ascii")


def signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def check(answer):
    if answer.isError():
        raise RuntimeError(f"Modbus exception {answer.exception_code:#04x}")
    return answer


def poll_unit(client: ModbusTcpClient, unit: int) -> dict | None:
    """One string's values from one tick, or None if there is no such unit."""
    ident = client.read_holding_registers(0, count=57, device_id=unit)
    if ident.isError() and ident.exception_code == NO_SUCH_UNIT:
        return None
    ident = check(ident).registers
    jars = ident[56]
    while True:
        head = check(client.read_input_registers(0, count=16, device_id=unit)).registers
        volts = check(client.read_input_registers(JAR_VOLTAGE, count=jars, device_id=unit)).registers
        alarms = check(client.read_discrete_inputs(0, count=len(ALARMS), device_id=unit)).bits[:len(ALARMS)]
        seq = check(client.read_input_registers(0, count=2, device_id=unit)).registers
        if seq == head[0:2]:  # no tick in between: one tick's values
            break
    jar_v = [v / 1000 for v in volts if v != 0xFFFF]  # 0xFFFF: the jar's module did not answer this tick
    return {
        "string_id": text(ident[16:36]), "model": text(ident[0:16]), "seq": (head[0] << 16) | head[1],
        "voltage_v": ((head[4] << 16) | head[5]) / 100, "current_a": signed((head[6] << 16) | head[7], 32) / 100,
        "mode": MODES[head[8]], "soc_pct": head[9] / 100, "ambient_c": signed(head[11], 16) / 10,
        "jar_min_v": min(jar_v, default=float("nan")), "jar_max_v": max(jar_v, default=float("nan")),
        "alarms": [name for name, on in zip(ALARMS, alarms) if on],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=502)
    args = parser.parse_args()
    client = ModbusTcpClient(args.host, port=args.port, timeout=10)
    if not client.connect():
        print(f"cannot connect to {args.host}:{args.port}", file=sys.stderr)
        return 1
    try:
        unit = 1
        while (string := poll_unit(client, unit)) is not None:
            print(f"unit {unit:3} {string['string_id']:<22} seq {string['seq']:>6} {string['mode']:<12} "
                  f"{string['voltage_v']:8.2f} V {string['current_a']:+8.2f} A  SOC {string['soc_pct']:6.2f} %  "
                  f"jars {string['jar_min_v']:.3f}-{string['jar_max_v']:.3f} V  room {string['ambient_c']:.1f} °C  "
                  f"alarms: {', '.join(string['alarms']) or 'none'}")
            unit += 1
    finally:
        client.close()
    return 0 if unit > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
