"""The codec endpoint for the Temporal UI and CLI: `POST /codec/encode` and `POST /codec/decode`
(Temporal's codec-server protocol), so an operator sees decoded payloads while the history on
the server holds only ciphertext.

The UI calls it from the browser, cross-origin: preflights from the configured origins are
answered, and a request from any other origin is refused. With a token configured, every
request needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.temporal import (
    AesGcmCodec,
    MalformedCodecRequest,
    PayloadDecryptionError,
    codec_json,
)
from workers.runtime import payload_codec
from workers.settings import Settings

from .bodies import read_limited
from .json_input import BadJson, parse_json

PREFIX = "/codec"
DEFAULT_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
# The headers the UI sends (and `temporal --codec-auth` adds).
ALLOWED_HEADERS = "content-type, x-namespace, authorization"
# The UI decodes a page of history events per request; payloads are at most 2 MiB each.
MAX_BODY_BYTES = 16 * 1024 * 1024


def codec_routes(
    codec: AesGcmCodec,
    *,
    token: str | None = None,
    origins: Sequence[str] = DEFAULT_ORIGINS,
) -> list[Route]:
    """Routes for `/codec/encode` and `/codec/decode` that run `codec`.

    Args:
        codec: The payload codec workers and clients use.
        token: When given, requests need `Authorization: Bearer <token>` (else 401).
        origins: Browser origins allowed to call the endpoint; `*` allows any.
    """
    allowed = set(origins)
    expected = token.encode() if token else None

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or not ("*" in allowed or origin in allowed):
            return {}
        return {
            "access-control-allow-origin": origin,
            "access-control-allow-credentials": "true",
            "vary": "Origin",
        }

    def refuse(request: Request, status: int, message: str) -> JSONResponse:
        headers = cors(request)
        if status == 401:
            headers["www-authenticate"] = "Bearer"
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def authorised(request: Request) -> bool:
        if expected is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(given, expected)

    async def preflight(request: Request) -> Response:
        headers = cors(request)
        if not headers:
            origin = request.headers.get("origin")
            return refuse(
                request,
                403,
                f"origin {origin!r} may not call the codec endpoint; allowed: "
                f"{', '.join(sorted(allowed))} (set DURABLE_CODEC_CORS_ORIGINS)",
            )
        headers |= {
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers": ALLOWED_HEADERS,
            "access-control-max-age": "600",
        }
        return Response(status_code=204, headers=headers)

    def endpoint(direction: Literal["encode", "decode"]) -> Route:
        async def handle(request: Request) -> Response:
            if request.method == "OPTIONS":
                return await preflight(request)
            origin = request.headers.get("origin")
            if origin is not None and not cors(request):
                return refuse(request, 403, f"origin {origin!r} may not call the codec endpoint")
            if not authorised(request):
                return refuse(request, 401, "missing or wrong 'Authorization: Bearer <token>'")
            body = await read_limited(request, MAX_BODY_BYTES)
            if isinstance(body, str):
                return refuse(request, 413, body)
            try:
                parse_json(body, nul=True)  # depth, numbers: what codec_json's parser meets
            except BadJson as err:
                return refuse(request, 400, str(err))
            try:
                answer = await codec_json(codec, body, direction)
            except MalformedCodecRequest as err:
                return refuse(request, 400, str(err))
            except PayloadDecryptionError as err:
                return refuse(request, 422, f"cannot decode: {err}")
            return JSONResponse(answer, headers=cors(request))

        return Route(f"{PREFIX}/{direction}", handle, methods=["POST", "OPTIONS"])

    return [endpoint("encode"), endpoint("decode")]


LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def open_codec_refusal(settings: Settings) -> str | None:
    """Why the API must not start as configured, or None: a codec endpoint with no token on an
    address beyond loopback would decrypt any payload for anyone who can reach it."""
    if payload_codec(settings) is None or settings.codec_token is not None:
        return None
    if settings.api_host in LOOPBACK:
        return None
    return (
        f"the codec endpoint would answer anyone on {settings.api_host} (DURABLE_API_HOST): set "
        f"DURABLE_CODEC_TOKEN (the Temporal UI and CLI send it as 'Authorization: Bearer ...'),"
        f" or serve the API on 127.0.0.1"
    )


def codec_routes_for(settings: Settings) -> list[Route]:
    """The codec endpoint's routes when DURABLE_CODEC_KEYS is set; none otherwise."""
    codec = payload_codec(settings)
    if codec is None:
        return []
    token = settings.codec_token.get_secret_value() if settings.codec_token else None
    return codec_routes(codec, token=token, origins=settings.codec_origins)
