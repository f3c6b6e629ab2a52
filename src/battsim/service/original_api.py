"""What the original service's clients expect, kept apart from our own API: its endpoints' error shape (``detail``
always a string), its scenario listing's ``typical_conditions``, and its ``ambient_temp`` (a battery-room
temperature the original applied with any scenario) translated onto our scenarios.
"""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from battsim.scenarios.catalogue import ScenarioSpec
from battsim.service.limits import brief, validation_error

API = "/api/v1"
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
