"""Sinks that deliver telemetry to monitoring stacks (issue 17): each on its own thread behind a bounded queue,
so a slow or failing endpoint never delays the simulation or another sink."""

from battsim.sinks.config import SinkConfigError, WebhookConfig, parse_sinks
from battsim.sinks.worker import SinkCounters, SinkWorker

__all__ = ["SinkConfigError", "SinkCounters", "SinkWorker", "WebhookConfig", "parse_sinks"]
