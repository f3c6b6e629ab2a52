"""What the original service's clients expect, kept apart from our own API: its endpoints' error shape (``detail``
always a string), its scenario listing's ``typical_conditions``, its ``ambient_temp`` (a battery-room
temperature the original applied with any scenario) translated onto our scenarios, and its ``/`` and ``/health``.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from battsim import __version__
from battsim.scenarios.catalogue import ScenarioSpec
from battsim.service.limits import brief, validation_error

API = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"  # the dashboard's files, served at / to browsers
# The original service's endpoints: they answer as it did (its status codes, ``detail`` always a string,
# leniencies reported as ``warnings``); the /api/v1 extensions stay strict.
ORIGINAL_PATHS = frozenset({"/", "/health", f"{API}/simulation/start", f"{API}/simulation/stop",
                            f"{API}/simulation/status", f"{API}/scenarios", f"{API}/scenarios/apply",
                            f"{API}/scenarios/clear"})
# GET /api/v1/scenarios "typical_conditions" as the original listed them (../shared/reference/
# original-api-transcript.json); ours, from the scenario catalogue, are under "conditions".
ORIGINAL_TYPICAL_CONDITIONS = {
    "normal_operation": {"voltage": "13.65V", "temperature": "25-27°C", "mode": "float"},
    "high_temperature": {"voltage": "13.65V", "temperature": "45-48°C", "mode": "float"},
    "power_outage": {"voltage": "11.5-12.0V", "temperature": "30-35°C", "mode": "discharge", "current": "-10 to -30A"},
    "hvac_failure": {"voltage": "13.65V", "temperature": "40-50°C", "mode": "float"},
    "battery_degradation": {"voltage": "13.5-13.7V (lower under load)", "temperature": "28-35°C (runs hotter)",
                            "resistance": "Increasing", "soh": "Declining rapidly"},
    "thermal_runaway": {"voltage": "Variable", "temperature": "65-75°C (critical)", "mode": "discharge"},
}


def ambient_temp_onto(spec: ScenarioSpec, params: dict, ambient_temp: float | None) -> tuple[dict, float | None]:
    """The original's ``ambient_temp`` on a scenario: a parameter of it where it has ``ambient_c``, else the room
    held at that temperature alongside (a ``high_temperature`` to apply too, returned as its °C)."""
    if ambient_temp is None:
        return params, None
    if "ambient_c" in spec.params.model_fields:
        return {"ambient_c": ambient_temp, **params}, None
    return params, ambient_temp


def as_text(detail: list[dict]) -> str:
    """A validation error list as one line naming each field: what the original's clients can show."""
    def field(loc) -> str:
        named = [str(part) for part in loc if part != "body"]
        return ".".join(named) or "request body"
    return brief("; ".join(f"{field(item.get('loc', ()))}: {item.get('msg', '')}" for item in detail))


async def original_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """422: on the original's endpoints ``detail`` is a string (its frontend shows it as text), else a list."""
    response = await validation_error(request, error)
    if request.url.path not in ORIGINAL_PATHS:
        return response
    return JSONResponse({"detail": as_text(json.loads(response.body)["detail"])}, status_code=422)


async def original_http_error(request: Request, error: StarletteHTTPException):
    if request.url.path in ORIGINAL_PATHS and isinstance(error.detail, list):
        error = HTTPException(error.status_code, detail=as_text(error.detail), headers=error.headers)
    return await http_exception_handler(request, error)


# GET / (as JSON): the original's endpoint names and values first, then ours.
ENDPOINTS = {
    "health": "/health",
    "start_simulation": f"POST {API}/simulation/start",
    "stop_simulation": f"POST {API}/simulation/stop",
    "get_status": f"GET {API}/simulation/status",
    "scenarios": f"GET {API}/scenarios",
    "apply_scenario": f"POST {API}/scenarios/apply",
    "clear_scenario": f"POST {API}/scenarios/clear",
    "websocket": f"WS {API}/ws/telemetry",
    "docs": "GET /docs",
    "speed": f"POST {API}/simulation/speed",
    "pause": f"POST {API}/simulation/pause",
    "resume": f"POST {API}/simulation/resume",
    "active_scenarios": f"GET {API}/scenarios/active",
    "presets": f"GET {API}/presets",
    "timeline": f"GET|POST {API}/timeline",
    "timeline_preview": f"POST {API}/timeline/preview",
    "alarms": f"GET {API}/alarms",
    "subscribers": f"GET {API}/ws/subscribers",
    "recordings": f"GET {API}/recordings",
    "replay": f"POST {API}/replay/start|pause|resume|stop|seek|speed, GET {API}/replay/status",
    "replay_telemetry": f"WS {API}/ws/replay",
    "query": f"POST {API}/query",
    "sinks": f"GET {API}/sinks",
    "metrics": "GET /metrics",
    "sessions": f"GET {API}/sessions; {API}/sessions/{{name}}/simulation/start|stop|status|..., "
                f"WS {API}/sessions/{{name}}/ws/telemetry",
}


class EndpointMap(BaseModel):
    service: str = Field(description="The original's name for itself.")
    version: str = Field(description="The original's version, which its clients may check.")
    battsim_version: str
    endpoints: dict[str, str] = Field(description="What each endpoint is, as method and path.")


class Health(BaseModel):
    status: str
    service: str
    version: str
    battsim_version: str


router = APIRouter()


@router.get("/", summary="Endpoint map (JSON), or the dashboard for browsers", response_model=EndpointMap,
            responses={200: {"content": {"text/html": {}}, "description": "The map as JSON; the dashboard's page "
                                                                          "for a browser asking for HTML"}})
async def root(request: Request):
    accept = request.headers.get("accept", "")
    index = STATIC_DIR / "index.html"
    if "application/json" not in accept and "text/html" in accept and index.is_file():
        return FileResponse(index)
    return {"service": "Sensor Simulator Service", "version": "1.0.0", "battsim_version": __version__,
            "endpoints": ENDPOINTS}


@router.get("/health", summary="Health check (the original's body)", response_model=Health)
async def health():
    return {"status": "healthy", "service": "sensor-simulator", "version": "1.0.0", "battsim_version": __version__}
