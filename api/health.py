"""`/healthz` (the process answers) and `/readyz` (what it depends on answers now)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

log = logging.getLogger("durable.api")

Check = Callable[[], Awaitable[object]]


async def states(checks: Mapping[str, Check], timeout: float = 5.0) -> dict[str, str]:
    """Each check's state: "ok" or "unreachable" (why goes to the log, never to the caller)."""
    found: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout)
            found[name] = "ok"
        except Exception as err:
            log.warning("not ready", extra={"dependency": name, "error": repr(err)})
            found[name] = "unreachable"
    return found


def health_routes(checks: Mapping[str, Check]) -> list[Route]:
    """No credential needed: they say only whether things answer."""

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> JSONResponse:
        found = await states(checks)
        ok = all(state == "ok" for state in found.values())
        return JSONResponse({"ready": ok, **found}, status_code=200 if ok else 503)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
