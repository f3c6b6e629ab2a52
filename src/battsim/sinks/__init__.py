"""Sinks that deliver telemetry to monitoring stacks (issue 17): each on its own thread behind a bounded queue,
so a slow or failing endpoint never delays the simulation or another sink."""

from battsim.sinks.config import (
    MqttConfig,
    PostgresConfig,
    SinkConfig,
    SinkConfigError,
    WebhookConfig,
    load_sink_file,
    parse_sinks,
    sinks_from_options,
)
from battsim.sinks.fanout import FanOut, Sink, build_sink
from battsim.sinks.worker import SinkCounters, SinkWorker

__all__ = ["FanOut", "MqttConfig", "PostgresConfig", "Sink", "SinkConfig", "SinkConfigError", "SinkCounters",
           "SinkWorker", "WebhookConfig", "build_sink", "load_sink_file", "parse_sinks",
           "sinks_from_options"]
