"""Limits on what a request may carry: the body's size, and how much of the input an error may repeat.

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, validation_error)

A body over the cap is refused with a 413 before it is parsed: at once when ``Content-Length`` says
so, else as soon as the bytes streamed in pass it (a chunked upload), so a 60 MB body neither
freezes the event loop in the JSON parser nor grows the process. Validation errors (422) name the
field and say what is allowed, but repeat at most a short prefix of what was sent.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The largest legitimate body is a start or timeline request carrying a timeline's TOML text, which the
# scenario core caps at 256 KiB (scenarios/timeline.py MAX_TIMELINE_BYTES); JSON escaping can grow it
# by a few times when it is full of quotes and newlines. 1 MiB leaves room for that and for a
# 1,000-battery start body (about 90 kB), and parses in milliseconds.
MAX_BODY_BYTES = 1024 * 1024
# The WebSockets only send (telemetry, replay frames); what a client sends is read and dropped, so the only
# legitimate inbound message is a keep-alive of a few bytes. Without a cap of its own a socket takes what
# uvicorn allows, 16 MiB a message, buffered whole before it is dropped. A larger message closes the
# socket with 1009 (message too big). Passed as uvicorn's ws_max_size by `battsim serve`.
MAX_WS_MESSAGE_BYTES = 64 * 1024
# How much of a value an error message may quote.
SHOWN_CHARS = 80
# How long an error message may be.
MESSAGE_CHARS = 600


def too_large(max_bytes: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body: larger than {max_bytes} bytes, the most this server accepts"},
                        status_code=413)


class BodyLimit:
    """ASGI middleware: refuse an HTTP request body larger than ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_bytes):
            # Refused before a byte of it is read; the server discards whatever of it still arrives.
            await too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0
        refused = started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer now (unless the app already has), and tell the app the client has gone: it
                    # stops reading, and what it answers to that is dropped below.
                    if not started:
                        await too_large(self.max_bytes)(scope, receive, send)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def shown(value: Any) -> Any:
    """``value`` as an error may repeat it: as is when short, else its start and its length."""
    try:
        text = json.dumps(value, default=str, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        # Not JSON as it stands: NaN or infinity (the JSON parser accepts them, the response may not carry
        # them, and the 422 itself was a 500), or a cycle. Shown as text.
        text = value = repr(value)
    if len(text) <= SHOWN_CHARS:
        return value
    return f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


def brief(message: str) -> str:
    """An error message cut to MESSAGE_CHARS (one built from a long input would otherwise repeat it)."""
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[:MESSAGE_CHARS]}... ({len(message)} characters)"


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (``detail``: a list of ``loc``, ``msg``, ``type``), with the input cut short."""
    detail = []
    for item in error.errors():
        entry = {"loc": list(item.get("loc", ())), "msg": brief(str(item.get("msg", ""))), "type": item.get("type")}
        if "input" in item:
            entry["input"] = shown(item["input"])
        detail.append(entry)
    return JSONResponse({"detail": detail}, status_code=422)
