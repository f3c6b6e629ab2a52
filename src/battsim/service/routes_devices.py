"""The Modbus register map over HTTP (issue 19).

    GET /api/v1/modbus/map[?format=csv|json]

The map ``battsim serve --modbus-port`` serves (devices/register_map.py), as CSV (the default: what an
integrator imports into a DCIM's device template) or as JSON rows with the same columns.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from battsim.devices.register_map import MAP_VERSION, map_csv, rows

API = "/api/v1"


def devices_router() -> APIRouter:
    router = APIRouter(tags=["devices"])

    @router.get(f"{API}/modbus/map", summary="The Modbus TCP register map, as CSV or JSON",
                responses={200: {"content": {"text/csv": {}, "application/json": {}}}})
    async def modbus_map(format: Literal["csv", "json"] = Query("csv", description="csv or json")):
        if format == "json":
            return {"map_version": MAP_VERSION, "rows": rows()}
        return Response(map_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'inline; filename="battsim-modbus-map.csv"'})

    return router
