"""docs/modbus-map.md, generated from the one register map (src/battsim/devices/register_map.py).

    .venv/bin/python tools/modbus_map.py           # rewrite docs/modbus-map.md
    .venv/bin/python tools/modbus_map.py --check   # exit 1 if docs/modbus-map.md is not the generated one

tests/test_devices_modbus.py fails when the file is stale, so the docs cannot drift from what is served.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from battsim.devices.register_map import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "modbus-map.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is current")
    text = markdown() + "\n"
    if parser.parse_args().check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is stale: run python tools/modbus_map.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
