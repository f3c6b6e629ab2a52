"""Prometheus: the latest tick of a fleet as gauges, and counters of the simulation and of its sinks, collected
when scraped (so the simulation's thread only keeps a reference to the last batch).

Names follow Prometheus' conventions (base units in the name, ``_total`` on counters). Per jar, labelled
``site``, ``string``, ``battery``: ``battsim_jar_voltage_volts``, ``battsim_jar_current_amperes``,
``battsim_jar_temperature_celsius``, ``battsim_jar_internal_resistance_milliohms``, ``battsim_jar_soc_percent``,
``battsim_jar_soh_percent``; per string (``site``, ``string``): ``battsim_string_voltage_volts``,
``battsim_string_current_amperes``; ``battsim_ticks_total``, ``battsim_readings_total``; per sink (``sink``,
``kind``): ``battsim_sink_sent_readings_total``, ``battsim_sink_dropped_readings_total``,
``battsim_sink_retried_total``, ``battsim_sink_queued_readings``. A reading the monitor could not take (NaN) is
left out of its gauge rather than exported as NaN."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks.payload import JarIds

JAR_GAUGES = (
    ("voltage_v", "battsim_jar_voltage_volts", "Measured block voltage, V"),
    ("current_a", "battsim_jar_current_amperes", "Measured string current through the jar, A (+ charge, - discharge)"),
    ("temperature_c", "battsim_jar_temperature_celsius", "Measured jar temperature, degrees Celsius"),
    ("internal_resistance_mohm", "battsim_jar_internal_resistance_milliohms", "Last measured ohmic resistance, mOhm"),
    ("soc_pct", "battsim_jar_soc_percent", "State of charge as the monitor estimates it, %"),
    ("soh_pct", "battsim_jar_soh_percent", "State of health as the monitor estimates it, %"),
)
STRING_GAUGES = (
    ("voltage_v", "battsim_string_voltage_volts", "Measured string voltage, V"),
    ("current_a", "battsim_string_current_amperes", "Measured string current, A (+ charge, - discharge)"),
)


class FleetMetrics:
    """Fed like a Sink; keeps the last tick and counts ticks and readings."""

    kind = "prometheus"

    def __init__(self, fleet):
        self.ids = JarIds.of_fleet(fleet)
        self.string_sites = [fleet.site_ids[site] for site in fleet.string_site]
        self.string_ids = list(fleet.string_ids)
        self.size = fleet.size
        self.ticks = 0
        self.readings_total = 0
        self._last: ReadingBatch | None = None

    def readings(self, batch: ReadingBatch) -> None:
        self._last = batch  # one assignment: a scrape on another thread sees this batch or the previous one
        self.ticks += batch.ticks
        self.readings_total += batch.rows

    def event(self, event: Event) -> None:
        self.ids.learn(event)

    def close(self) -> None:
        """Nothing to release: the last values stay scrapeable after the session stops."""

    def families(self) -> list[Metric]:
        families: list[Metric] = [
            CounterMetricFamily("battsim_ticks", "Ticks simulated", value=self.ticks),
            CounterMetricFamily("battsim_readings", "Readings simulated (one per jar per tick)",
                                value=self.readings_total),
        ]
        batch = self._last
        if batch is None:
            return families
        rows = slice(batch.rows - self.size, batch.rows)  # the batch's last tick
        battery_ids, site_ids, string_ids = self.ids.table
        keys = batch.columns["battery_key"][rows]
        for column, name, documentation in JAR_GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=["site", "string", "battery"])
            values = batch.columns[column][rows].astype(np.float64)
            for key, value in zip(keys.tolist(), values.tolist(), strict=True):
                if value == value:  # not NaN
                    family.add_metric([site_ids[key], string_ids[key], battery_ids[key]], value)
            families.append(family)
        strings = batch.string_columns
        count = len(self.string_ids)
        if len(strings["string_key"]) >= count:
            last = slice(len(strings["string_key"]) - count, len(strings["string_key"]))
            for column, name, documentation in STRING_GAUGES:
                family = GaugeMetricFamily(name, documentation, labels=["site", "string"])
                for key, value in zip(strings["string_key"][last].tolist(),
                                      strings[column][last].astype(np.float64).tolist(), strict=True):
                    if value == value:
                        family.add_metric([self.string_sites[key], self.string_ids[key]], value)
                families.append(family)
        return families


def sink_families(statuses: Iterable[dict]) -> list[Metric]:
    """Counters of each sink's deliveries, from its status."""
    sent = CounterMetricFamily("battsim_sink_sent_readings", "Readings a sink delivered", labels=["sink", "kind"])
    dropped = CounterMetricFamily("battsim_sink_dropped_readings", "Readings a sink dropped (full queue or gave up)",
                                  labels=["sink", "kind"])
    retried = CounterMetricFamily("battsim_sink_retried", "Deliveries a sink retried", labels=["sink", "kind"])
    queued = GaugeMetricFamily("battsim_sink_queued_readings", "Readings waiting in a sink's queue",
                               labels=["sink", "kind"])
    for status in statuses:
        labels = [status["name"], status["kind"]]
        sent.add_metric(labels, status["sent"])
        dropped.add_metric(labels, status["dropped"])
        retried.add_metric(labels, status["retried"])
        queued.add_metric(labels, status["queued"])
    return [sent, dropped, retried, queued]


class Collector:
    """A prometheus_client collector over whatever ``sources`` returns at scrape time: (FleetMetrics or None,
    sink statuses)."""

    def __init__(self, sources: Callable[[], tuple[FleetMetrics | None, list[dict]]]):
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        metrics, statuses = self._sources()
        if metrics is not None:
            yield from metrics.families()
        yield from sink_families(statuses)

    def describe(self) -> Iterable[Metric]:
        return []  # no fixed set up front: the collector is not checked for duplicates at registration
