"""Where every benchmark writes its figures: ``bench/results.json``, one entry per benchmark.

Each entry holds what the benchmark measured and the conditions it measured them in: when (UTC), the
command, the machine's load average before and after (other work on a shared machine inflates every
figure), its cores, and the versions of Python and of the libraries on the measured path. The README's
performance table is generated from this file by ``tools/bench_table.py``, never typed.
``BATTSIM_BENCH_RESULTS`` names another file (a scratch run that should not replace the figures).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

RESULTS = Path(os.environ.get("BATTSIM_BENCH_RESULTS", Path(__file__).resolve().parent / "results.json"))
LIBRARIES = ("battsim", "numpy", "simpy", "duckdb", "pyarrow", "polars", "fastapi", "uvicorn", "websockets",
             "playwright")


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class Measurement:
    """The conditions of one benchmark run: open it before measuring, ``save`` its figures after."""

    def __init__(self, name: str):
        self.name = name
        self.started = datetime.now(UTC)
        self.load_before = os.getloadavg()

    def save(self, figures: dict) -> Path:
        entry = {
            "measured_at": self.started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - self.started).total_seconds(), 1),
            "command": " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            "machine": {
                "cpu_count": os.cpu_count(),
                "load_average_before": [round(x, 2) for x in self.load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "platform": platform.platform(),
                "processor": platform.machine(),
            },
            "versions": {"python": platform.python_version(), **{name: _version(name) for name in LIBRARIES}},
            "figures": figures,
        }
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[self.name] = entry
        RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
        print(f"\nfigures written to {RESULTS} ({self.name})")
        return RESULTS
