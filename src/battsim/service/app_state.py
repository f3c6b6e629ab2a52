"""What the HTTP routers read from the app they serve: ``app.state.sessions`` (every live session and the
data directory), as a FastAPI dependency, so that each router is a module-level ``APIRouter`` and one app is
assembled from them in :func:`battsim.service.app.create_app`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from battsim.service.live import Sessions


def sessions_of(connection: HTTPConnection) -> Sessions:
    return connection.app.state.sessions


LiveSessions = Annotated[Sessions, Depends(sessions_of)]
