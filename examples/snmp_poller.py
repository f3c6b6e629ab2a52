"""An NMS-style poller: walk a battsim fleet's RFC 7577 BATTERY-MIB table over SNMPv2c, one line per string.

    battsim serve --preset thailand-9x24 --snmp-port 1161 &
    python examples/snmp_poller.py --port 1161

Walks batteryTable (1.3.6.1.2.1.233.1.1) with pysnmp's asyncio manager and prints, per battery (string), its
identifier, charging state, voltage, current, charge and hottest jar. Net-SNMP does the same with
``snmpwalk -v2c -c public 127.0.0.1:1161 1.3.6.1.2.1.233.1.1`` (docs/snmp.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    walk_cmd,
)

BATTERY_ENTRY = (1, 3, 6, 1, 2, 1, 233, 1, 1, 1)
COLUMNS = {1: "identifier", 13: "state", 15: "charge_mah", 16: "voltage_mv", 17: "current_ma", 18: "temperature_dc"}
STATES = {1: "unknown", 2: "charging", 3: "maintainingCharge", 4: "noCharging", 5: "discharging"}


async def walk_table(host: str, port: int, community: str) -> dict[int, dict]:
    """batteryTable as {index: {column name: value}} (one walk, so one tick per response)."""
    engine, rows = SnmpEngine(), {}
    try:
        target = await UdpTransportTarget.create((host, port), timeout=5, retries=2)
        async for error, status, _, var_binds in walk_cmd(
                engine, CommunityData(community, mpModel=1), target, ContextData(),
                ObjectType(ObjectIdentity(".".join(map(str, BATTERY_ENTRY)))), lexicographicMode=False):
            if error or status:
                raise RuntimeError(f"SNMP: {error or status.prettyPrint()}")
            for name, value in var_binds:
                column, index = tuple(name)[len(BATTERY_ENTRY)], tuple(name)[-1]
                if column in COLUMNS:
                    rows.setdefault(index, {})[COLUMNS[column]] = str(value) if column == 1 else int(value)
    finally:
        engine.close_dispatcher()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=161)
    parser.add_argument("--community", default="public")
    args = parser.parse_args()
    try:
        rows = asyncio.run(walk_table(args.host, args.port, args.community))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    for index, row in sorted(rows.items()):
        print(f"battery {index:3} {row['identifier']:<22} {STATES.get(row.get('state'), '?'):<18} "
              f"{row.get('voltage_mv', 0) / 1000:8.2f} V {row.get('current_ma', 0) / 1000:+8.2f} A  "
              f"charge {row.get('charge_mah', 0) / 1000:7.1f} Ah  hottest jar {row.get('temperature_dc', 0) / 10:.1f} °C")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
