"""The HTTP edge assembled: middleware (who may talk to it, body limits), the routers, the dashboard's files,
the endpoint map and the health check. Each router is one area (routes_simulation: the live simulation and the
original's endpoints; routes_replay, routes_query, routes_history, routes_timeline, routes_sinks, routes_devices)
over the sessions in ``app.state.sessions``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from battsim import __version__
from battsim.engine.fleet import FleetSpec, get_preset
from battsim.scenarios import Timeline
from battsim.service.docs import declare_bearer
from battsim.service.docs import router as docs_router
from battsim.service.guard import Guard
from battsim.service.limits import MAX_BODY_BYTES, BodyLimit
from battsim.service.live import MAX_LIVE_JARS, MAX_NAMED_SESSIONS, Attach, LiveConfig, Sessions
from battsim.service.original_api import API, STATIC_DIR, original_http_error, original_validation_error
from battsim.service.original_api import router as original_router
from battsim.service.routes_devices import router as devices_router
from battsim.service.routes_history import router as history_router
from battsim.service.routes_query import Queries
from battsim.service.routes_query import router as query_router
from battsim.service.routes_replay import Replays
from battsim.service.routes_replay import router as replay_router
from battsim.service.routes_simulation import named_session, session_router
from battsim.service.routes_simulation import router as simulation_router
from battsim.service.routes_sinks import router as sinks_router
from battsim.service.routes_sinks import sinks_attachment
from battsim.service.routes_timeline import router as timeline_router
from battsim.service.security import AccessPolicy
from battsim.sinks import SinkConfig


# ---------------------------------------------------------------------------------------- the app
def create_app(data_dir: str | Path = "recordings", preset: str | None = None, *, interval_s: int = 5,
               speed: float = 1.0, seed: int = 0, broadcaster: dict | None = None,
               access: AccessPolicy | None = None, fleet: FleetSpec | None = None,
               timelines: Sequence[Timeline] = (), backfill_s: float = 0.0,
               attachments: Sequence[Attach] = (),
               listeners: Sequence[Callable[[], AbstractAsyncContextManager]] = (),
               sinks: Sequence[SinkConfig] = (), max_named_sessions: int = MAX_NAMED_SESSIONS,
               max_live_jars: int = MAX_LIVE_JARS) -> FastAPI:
    """The battsim service. ``preset`` starts that fleet at boot; recordings go to ``data_dir``.

    ``fleet`` boots that fleet instead (``preset`` then only names it), with ``timelines`` (loaded and
    checked, as ``battsim serve --fleet/--timeline`` does) installed in it. ``backfill_s``: the boot fleet
    first runs that much history before now at batch speed (``battsim serve --backfill``). ``attachments``
    are made for every session that starts and fed all it produces (see :class:`~battsim.service.live.Attached`).
    ``listeners`` are entered when the app starts and exited after its sessions stop (the Modbus and SNMP agents).
    ``sinks`` (battsim.sinks configs) are built for every session, beside its Prometheus metrics (GET /metrics,
    GET /api/v1/sinks).

    ``max_named_sessions`` and ``max_live_jars`` bound the sessions side by side (README "Several simulations side
    by side").

    ``broadcaster`` overrides the WebSocket fan-out settings (see :class:`~battsim.service.broadcast.Broadcaster`);
    ``access`` says who may talk to the server (default: this machine only, no token; see
    :mod:`battsim.service.security`).
    """
    if fleet is None and preset is not None:
        fleet = get_preset(preset)  # refuse an unknown preset now, not at boot
    sessions = Sessions(Path(data_dir), broadcaster or {}, attachments=[*attachments, sinks_attachment(sinks)],
                        max_named_sessions=max_named_sessions, max_live_jars=max_live_jars)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        listening = AsyncExitStack()
        for listener in listeners:
            await listening.enter_async_context(listener())
        if fleet is not None:
            await sessions.start(LiveConfig(fleet=fleet, preset=preset, interval_s=interval_s, speed=speed, seed=seed,
                                            timelines=list(timelines), backfill_s=backfill_s))
        yield
        # A clean shutdown (SIGINT/SIGTERM) completes every recording.
        await sessions.stop_all()
        await listening.aclose()

    app = FastAPI(
        title="battsim", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Live VRLA battery-fleet simulation: the original sensor-simulator API (REST + WebSocket), "
                    "scenarios, timelines, and every reading recorded to DuckDB.",
    )
    app.state.sessions = sessions
    # Bodies are capped before they are parsed (413), and a 422 repeats only the start of a long input.
    app.add_exception_handler(RequestValidationError, original_validation_error)
    app.add_exception_handler(StarletteHTTPException, original_http_error)
    # Who may talk to it: allowed hosts and origins (CORS), the token, JSON bodies, security headers.
    access = access or AccessPolicy()
    app.add_middleware(Guard, policy=access)
    if access.token:
        declare_bearer(app)
    app.include_router(docs_router)  # /docs from the package's files, and the endpoint map at /api/v1/
    # The dashboard's files, when the package ships them (served at / to browsers, below).
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Recordings, replay and read-only SQL over the same data directory; a recording a live session is
    # still writing is read through its writer's connection.
    app.state.replays = Replays(data_dir, live_connection=sessions.live_connection)
    app.include_router(replay_router)
    app.state.queries = Queries(data_dir)
    app.include_router(query_router)
    app.include_router(history_router)  # recent history for the dashboard (issue 16)
    app.include_router(devices_router)  # the Modbus register map (issue 19)
    app.include_router(sinks_router)  # GET /api/v1/sinks, GET /metrics (issue 17)
    app.include_router(simulation_router)  # presets, the scenario catalogue, the list of sessions
    # The live simulation, its scenarios, alarms and telemetry WebSocket: the default session's under /api/v1
    # (the original's paths), each named session's under /api/v1/sessions/{name}.
    app.include_router(session_router, prefix=API)
    app.include_router(session_router, prefix=f"{API}/sessions/{{name}}", dependencies=[Depends(named_session)])
    app.include_router(timeline_router)  # timelines: install, preview, the builder's form (issue 24)
    app.include_router(original_router)  # the original's / (or the dashboard, for browsers) and /health

    return app
