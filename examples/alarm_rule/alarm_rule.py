"""An alarm rule debounced on the wall clock: a jar discharging for 10 minutes raises an alarm, once."""

from datetime import UTC, datetime, timedelta

import polars as pl


class DischargeAlarm:
    def __init__(self, debounce: timedelta = timedelta(minutes=10)):
        self.debounce = debounce
        self.since: dict[str, datetime] = {}  # jar -> when it was first seen discharging
        self.active: set[str] = set()
        self.raised: list[tuple[str, datetime]] = []

    def update(self, readings: pl.DataFrame) -> None:
        now = datetime.now(UTC)  # the wall clock, as a real rule reads it
        discharging = set(readings.filter(pl.col("mode") == "discharge")["battery_id"])
        for jar in set(self.since) - discharging:  # back on charge: the next discharge debounces afresh
            del self.since[jar]
            self.active.discard(jar)
        for jar in sorted(discharging - self.active):
            if now - self.since.setdefault(jar, now) >= self.debounce:
                self.active.add(jar)
                self.raised.append((jar, now))
