"""Request bodies read with their size checked as they arrive: a body over the limit is refused
once the limit is passed (or at once, by its Content-Length), never held whole. The rest of
such a body is not read either: `api/guard.py` closes the connection after the answer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .json_input import BadJson, parse_json


def too_large(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=413)


async def read_limited(request: Request, limit: int) -> bytes | str:
    """The body, or why it is refused: over `limit` bytes (by Content-Length, or once that
    many have arrived; no more is read)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return f"body is over the limit of {limit} bytes"  # as said after reading that much
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return f"body is over the limit of {limit} bytes"
    return bytes(body)


async def read_body(request: Request, limit: int) -> bytes | JSONResponse:
    """The body, or a 413 that says the limit."""
    body = await read_limited(request, limit)
    return too_large(body) if isinstance(body, str) else body


async def read_json(
    request: Request, limit: int, *, nul: bool = False, empty: bytes = b""
) -> Any | JSONResponse:
    """The body parsed by `api.json_input.parse_json` (`empty`: what an empty body stands
    for), or the refusal: 413 over `limit`, 400 or 422 (a NUL character) for what the parser
    refuses."""
    raw = await read_body(request, limit)
    if isinstance(raw, JSONResponse):
        return raw
    try:
        return parse_json(raw or empty, nul=nul)
    except BadJson as err:
        return JSONResponse({"error": str(err)}, status_code=err.status)
