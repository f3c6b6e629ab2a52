"""The sinks of one run or live session, built from their configs for a fleet, fed as one Sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks.config import MqttConfig, PostgresConfig, SinkConfig, WebhookConfig
from battsim.sinks.payload import JarIds


class Sink(Protocol):
    """The engine's Sink, plus what an observable, bounded delivery needs."""

    kind: str

    def readings(self, batch: ReadingBatch) -> None: ...

    def event(self, event: Event) -> None: ...

    def close(self) -> None: ...

    def status(self) -> dict:
        """name, kind, state, queued, sent, retried, dropped (readings), last_error."""
        ...


def build_sink(config: SinkConfig, fleet, wait: bool = False) -> Sink:
    """The sink of ``config`` for ``fleet``; ``wait``: a back-fill that waits for room rather than dropping."""
    ids = JarIds.of_fleet(fleet)
    if isinstance(config, WebhookConfig):
        from battsim.sinks.webhook import WebhookSink

        return WebhookSink(config, ids, wait=wait)
    if isinstance(config, MqttConfig):
        from battsim.sinks.mqtt import MqttSink

        return MqttSink(config, ids, wait=wait)
    if isinstance(config, PostgresConfig):
        from battsim.sinks.postgres import PostgresSink

        return PostgresSink(config, ids, wait=wait)
    raise TypeError(f"not a sink config: {config!r}")


class FanOut:
    """Every sink gets every batch and event; one that fails to start does not leave the others running."""

    kind = "fanout"

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    @classmethod
    def build(cls, configs: Sequence[SinkConfig], fleet, wait: bool = False) -> FanOut:
        sinks: list[Sink] = []
        try:
            for config in configs:
                sinks.append(build_sink(config, fleet, wait))
        except BaseException:
            cls(sinks).close()
            raise
        return cls(sinks)

    def readings(self, batch: ReadingBatch) -> None:
        for sink in self.sinks:
            sink.readings(batch)

    def event(self, event: Event) -> None:
        for sink in self.sinks:
            sink.event(event)

    def status(self) -> list[dict]:
        return [sink.status() for sink in self.sinks]

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
