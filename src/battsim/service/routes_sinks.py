"""The live sessions' sinks over HTTP (issue 17).

    GET /api/v1/sinks   each sink of the running (or last) simulation: name, kind, state, queued, sent, retried,
                        dropped (readings), last_error; ``{"running": bool, "sinks": [...]}``
    GET /metrics        Prometheus text: the last tick's per-jar and per-string gauges, tick and reading counters,
                        and each sink's counters (battsim.sinks.prometheus)

Each session gets a :class:`SessionSinks` attachment (made by :func:`sinks_attachment`): its configured sinks
and its Prometheus metrics, fed the live ticks only. Back-filled ticks (``serve --backfill``) are not sent to the
sinks, as they are not sent to the WebSocket: a back-fill into a database is ``battsim run --postgres``'s job."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from battsim.engine.maintenance import JAR_REPLACED
from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.service.app_state import LiveSessions
from battsim.service.live import DEFAULT_SLOT, Attach, LiveSession, Sessions
from battsim.sinks import FanOut, SinkConfig
from battsim.sinks.prometheus import Collector, FleetMetrics

API = "/api/v1"


class SessionSinks:
    """One session's sinks and metrics, as one attachment."""

    def __init__(self, session: LiveSession, configs: Sequence[SinkConfig]):
        self.session = session
        self.metrics = FleetMetrics(session.fleet)
        self.sinks = FanOut.build(configs, session.fleet)

    @property
    def live(self) -> bool:
        return self.session.backfill is None or self.session.backfill.done

    def readings(self, batch: ReadingBatch) -> None:
        if self.live:
            self.metrics.readings(batch)
            self.sinks.readings(batch)

    def event(self, event: Event) -> None:
        self.metrics.event(event)
        # A back-fill's alarms and outages are history, like its readings; a replaced jar's new id is needed later.
        if self.live or event.kind == JAR_REPLACED:
            self.sinks.event(event)

    def close(self) -> None:
        self.sinks.close()


def sinks_attachment(configs: Sequence[SinkConfig]) -> Attach:
    """What create_app gives every session: its metrics, and the configured sinks (``configs``, possibly none) for
    the default session only. The sinks are one MQTT client id and topic prefix, one webhook, one table: a named
    session's telemetry would mix into the default's there (and its MQTT client would push the other off the
    broker, which allows one connection per client id)."""
    return lambda session: SessionSinks(session, configs if session.slot == DEFAULT_SLOT else ())


def _attached(sessions: Sessions) -> SessionSinks | None:
    session = sessions.slot(DEFAULT_SLOT).session
    if session is None:
        return None
    return next((attached for attached in session.attached if isinstance(attached, SessionSinks)), None)


class SinkStatus(BaseModel):
    model_config = ConfigDict(extra="allow")  # each kind adds its own counters
    name: str
    state: str
    last_error: str | None
    queued: int = Field(description="Readings waiting in its queue.")
    sent: int
    retried: int
    dropped: int = Field(description="Readings given up on (queue full, or undeliverable after retries).")


class SinksAnswer(BaseModel):
    running: bool = Field(description="Whether the default session's simulation is running.")
    sinks: list[SinkStatus]


router = APIRouter(tags=["sinks"])


@router.get(f"{API}/sinks", summary="Each sink's state and counters", response_model=SinksAnswer)
def sinks(sessions: LiveSessions) -> dict:
    attached = _attached(sessions)
    session = sessions.slot(DEFAULT_SLOT).session
    return {"running": bool(session is not None and session.running),
            "sinks": [] if attached is None else attached.sinks.status()}


@router.get("/metrics", summary="Prometheus metrics of the live simulation and its sinks", response_class=Response,
            responses={200: {"description": "The Prometheus text exposition format (version 0.0.4)",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
def metrics(sessions: LiveSessions) -> Response:
    def sources():
        attached = _attached(sessions)
        return (None, []) if attached is None else (attached.metrics, attached.sinks.status())

    registry = CollectorRegistry(auto_describe=False)  # per request: it reads this app's sessions
    registry.register(Collector(sources))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
