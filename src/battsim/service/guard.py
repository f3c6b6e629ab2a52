"""The ASGI middleware that applies :mod:`battsim.service.security`'s rules to every request and WebSocket
handshake: Host, Origin, token and body checks, then CORS and security headers on every response."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from battsim.service.security import (
    DASHBOARD_CSP,
    SECURITY_HEADERS,
    STATE_CHANGING,
    WS_SUBPROTOCOL,
    WS_TOKEN_PREFIX,
    AccessPolicy,
    bearer_token,
    has_body,
    host_allowed,
    hosts_allowed,
    is_json,
    is_open_path,
    origin_allowed,
    tokens_match,
)


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


class Guard:
    """ASGI middleware: the Host, Origin, token and body checks on every request and WebSocket handshake;
    CORS and security headers on every response. Lifespan and other scopes pass through untouched."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy | None = None):
        self.app = app
        self.policy = policy or AccessPolicy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        cors_origin = origin if origin is not None and self.origin_ok(scope, headers, origin) else None
        send = self.with_headers(send, cors_origin, scope)
        refusal = self.refusal(scope, headers, origin)
        if refusal is not None:
            await self.refuse(scope, send, refusal)
        elif scope["type"] == "http" and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            # An allowed origin's preflight: answered here (it carries no token), never by a route.
            await Response(status_code=204, headers=preflight_headers(headers))(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def origin_ok(self, scope: Scope, headers: Headers, origin: str) -> bool:
        return origin_allowed(self.policy, origin, headers.get("host"), scope.get("server"))

    def refusal(self, scope: Scope, headers: Headers, origin: str | None) -> Refusal | None:
        bound = scope.get("server")
        if not host_allowed(self.policy, headers.get("host"), bound[0] if bound else None):
            allowed = ", ".join(sorted(hosts_allowed(self.policy, bound[0] if bound else None)))
            return Refusal(400, f"Host header {headers.get('host')!r} is not allowed; allowed hosts: {allowed} "
                                "(battsim serve --allowed-host NAME adds one)")
        if origin is not None and not self.origin_ok(scope, headers, origin):
            return Refusal(403, f"origin {origin!r} is not allowed (battsim serve --allowed-origin {origin} "
                                "allows it)")
        preflight = scope["type"] == "http" and scope["method"] == "OPTIONS" and "access-control-request-method" in headers
        if self.policy.token and not preflight and not is_open_path(scope["path"]):
            # Only a WebSocket may carry it outside the header (a browser cannot set headers on one).
            given = (bearer_token(headers, scope.get("query_string", b""), scope.get("subprotocols", ()))
                     if scope["type"] == "websocket" else bearer_token(headers))
            if not tokens_match(given, self.policy.token):
                what = "a wrong token" if given else "no token"
                return Refusal(401, f"this server needs its token and the request has {what}: send "
                                    "'Authorization: Bearer <token>' (WebSocket from a browser: the subprotocols "
                                    f"['{WS_SUBPROTOCOL}', '{WS_TOKEN_PREFIX}<token>'])",
                               {"www-authenticate": 'Bearer realm="battsim"'})
        if (scope["type"] == "http" and scope["method"] in STATE_CHANGING and has_body(headers)
                and not is_json(headers.get("content-type"))):
            return Refusal(415, f"Content-Type {headers.get('content-type')!r} is not accepted; a request body "
                                "must be JSON (Content-Type: application/json)")
        return None

    @staticmethod
    async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
        if scope["type"] == "http":
            await JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)(scope, None, send)
        elif "websocket.http.response" in scope.get("extensions", {}):
            # The ASGI denial response: the client sees the real status and the reason.
            body = JSONResponse({"detail": refusal.detail}, refusal.status, headers=refusal.headers)
            await send({"type": "websocket.http.response.start", "status": body.status_code,
                        "headers": body.raw_headers})
            await send({"type": "websocket.http.response.body", "body": body.body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": refusal.detail[:120]})

    def with_headers(self, send: Send, cors_origin: str | None, scope: Scope) -> Send:
        """``send`` that adds the security headers (and CORS ones for an allowed origin) to the response."""
        offered = scope.get("subprotocols", ()) if scope["type"] == "websocket" else ()

        async def sending(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message["headers"] = response_headers(message.get("headers", []), cors_origin)
            elif message["type"] == "websocket.accept" and message.get("subprotocol") is None and WS_SUBPROTOCOL in offered:
                message = {**message, "subprotocol": WS_SUBPROTOCOL}
            await send(message)

        return sending


def response_headers(raw: list[tuple[bytes, bytes]], cors_origin: str | None) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in raw}
    added = {**SECURITY_HEADERS, "content-security-policy": DASHBOARD_CSP}
    if cors_origin is not None:
        added |= {"access-control-allow-origin": cors_origin, "vary": "Origin",
                  "access-control-expose-headers": "Retry-After, WWW-Authenticate"}
    return list(raw) + [(name.encode(), value.encode()) for name, value in added.items()
                        if name.encode() not in present]


def preflight_headers(headers: Headers) -> dict[str, str]:
    return {"access-control-allow-methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "access-control-allow-headers": headers.get("access-control-request-headers", "authorization, content-type"),
            "access-control-max-age": "600"}
