"""The Modbus register map over HTTP (issue 19).

    GET /api/v1/modbus/map[?format=csv|json]

The map ``battsim serve --modbus-port`` serves (devices/register_map.py), as CSV (the default: what an
integrator imports into a DCIM's device template) or as JSON rows with the same columns.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from battsim.devices.register_map import MAP_VERSION, map_csv, rows

API = "/api/v1"


class RegisterMap(BaseModel):
    map_version: int = Field(description="Changes whenever an address or a field's meaning does.")
    rows: list[dict[str, Any]] = Field(description="One per field: table, function, address, registers, name, "
                                                   "type, unit, scale, as the CSV's columns.")


router = APIRouter(tags=["devices"])


@router.get(f"{API}/modbus/map", summary="The Modbus TCP register map, as CSV or JSON", response_model=RegisterMap,
            responses={200: {"content": {"text/csv": {}}, "description": "CSV (the default) or, with format=json, "
                                                                         "the same rows as JSON"}})
async def modbus_map(format: Literal["csv", "json"] = Query("csv", description="csv or json")):
    if format == "json":
        return {"map_version": MAP_VERSION, "rows": rows()}
    return Response(map_csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'inline; filename="battsim-modbus-map.csv"'})
