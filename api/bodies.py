"""Request bodies read with their size checked as they arrive: a body over the limit is refused
once the limit is passed (or at once, by its Content-Length), never held whole."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse


def too_large(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=413)


async def read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, or a 413 that says the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return too_large(f"body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return too_large(f"body is over the limit of {limit} bytes")
    return bytes(body)
