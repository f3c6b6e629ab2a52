"""What describes the API: Swagger UI at ``/docs`` from the package's own files (it works offline), the
endpoint map at ``/api/v1/``, and the bearer scheme in the OpenAPI document when a token is set."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from pydantic import BaseModel, Field

API = "/api/v1"
SWAGGER_ASSETS = "/static/docs"  # swagger-ui-dist, vendored: see static/docs/README
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: str) -> str:
    """The page's policy: its own files, plus exactly the inline script that starts Swagger UI (by hash).

    Swagger UI sets inline styles on what it renders, so styles may be inline; nothing else may be.
    """
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                      for script in INLINE_SCRIPT.findall(html))
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def endpoint_map(app: FastAPI) -> list[dict[str, str]]:
    """Method, path and summary of every route (WebSockets as method ``WS``), in path order."""
    endpoints = []
    for context in iter_route_contexts(app.routes):  # included routers' routes too, with their paths
        route = context.original_route
        if isinstance(route, APIRoute):
            summary = route.summary or route.name.replace("_", " ")
            endpoints += [{"method": method, "path": context.path, "summary": summary}
                          for method in sorted(route.methods - {"HEAD"})]
        elif isinstance(route, APIWebSocketRoute):
            doc = (route.endpoint.__doc__ or route.name.replace("_", " ")).strip()
            endpoints.append({"method": "WS", "path": context.path, "summary": doc.splitlines()[0]})
    return sorted(endpoints, key=lambda endpoint: (endpoint["path"], endpoint["method"]))


def declare_bearer(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation but ``/health`` needs the bearer token, so /docs
    shows an Authorize button whose token its "Try it out" requests carry."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "battsim serve --token / BATTSIM_TOKEN"}}
            schema["security"] = [{"bearer": []}]
            for operation in schema["paths"].get("/health", {}).values():
                operation["security"] = []
        return app.openapi_schema

    app.openapi = openapi


router = APIRouter()


@router.get("/docs", include_in_schema=False, summary="API documentation (Swagger UI, from the package: works offline)")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(openapi_url=root + request.app.openapi_url, title=f"{request.app.title} API",
                               swagger_js_url=f"{root}{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{SWAGGER_ASSETS}/swagger-ui.css", swagger_favicon_url="data:,",
                               swagger_ui_parameters={"validatorUrl": None})  # the validator badge is an online service
    page.headers["content-security-policy"] = docs_csp(page.body.decode())
    return page


class ApiIndex(BaseModel):
    service: str
    version: str
    docs: str
    endpoints: list[dict[str, str]] = Field(description="Method, path and summary of every endpoint.")


@router.get(f"{API}/", summary="Endpoint map: method, path and summary of every endpoint", response_model=ApiIndex)
async def api_index(request: Request) -> dict:
    return {"service": request.app.title, "version": request.app.version, "docs": "/docs",
            "endpoints": endpoint_map(request.app)}
