"""What every request meets before a route: an ASGI middleware of `create_app`.

- A path or query string with a NUL character (`%00`) is a 400: no id, org or name may hold
  one (PostgreSQL text cannot), and a route would otherwise fail only at the store.
- An answer given before the request's body was read to its end (a 401 before the body, a 413
  past the limit) says `Connection: close`. It is sent at once; then at most DRAIN_BYTES more
  of the body are read and dropped (for DRAIN_SECONDS at most), so that a client that sends a
  little too much before it reads still gets the answer, and the connection is closed. The
  server never reads the rest of a larger body, nor holds any of it.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLOSE = (b"connection", b"close")
DRAIN_BYTES = 8 * 1024 * 1024
DRAIN_SECONDS = 5.0


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


def _nul_in(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        return "query string"
    return None


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        read = not _has_body(scope)  # the body read to its end (or there is none)
        early = False  # answered before that

        async def receiving() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                read = True
            return message

        async def drain() -> None:
            left = DRAIN_BYTES
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_SECONDS):
                    while not read and left > 0:
                        left -= len((await receiving()).get("body", b""))

        async def sending(message: Message) -> None:
            nonlocal early
            if message["type"] == "http.response.start" and not read:
                early = True
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            if early and message["type"] == "http.response.body" and not message.get("more_body"):
                await send({**message, "more_body": True})  # the whole answer, sent now
                await drain()
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        nul = _nul_in(scope)
        if nul is not None:
            refusal = {"error": f"the {nul} contains a NUL character (%00)"}
            await JSONResponse(refusal, status_code=400)(scope, receiving, sending)
            return
        await self.app(scope, receiving, sending)
