"""5xx answers: a generic sentence and a request id for the caller, the detail in the log.

An exception's text (`[Errno 111] Connection refused`, a host, a DSN) tells an unknown caller
about the deployment and nothing they can act on; the operator finds it in the log under the
request id the caller was given (`X-Request-Id` and the body's `request_id`). 4xx answers are
not made here: they say what the caller must fix.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("durable.api")

REQUEST_ID_HEADER = "X-Request-Id"
INTERNAL = "internal error; the server log has the detail under this request id"


def server_error(
    request: Request, status: int, message: str, detail: BaseException | str | None = None
) -> JSONResponse:
    """`{"error": message, "request_id": ...}` with `status` (5xx) and `X-Request-Id`, after
    logging `detail` (an exception or why) with the request id and path. `message` is said to
    anyone: it must carry no exception text."""
    request_id = uuid.uuid4().hex
    if isinstance(detail, BaseException):
        why = f"{type(detail).__name__}: {detail}"
    else:
        why = detail or message
    log.error(
        "%s %s answered %d (request %s): %s",
        request.method,
        request.url.path,
        status,
        request_id,
        why,
        extra={"request_id": request_id, "path": request.url.path, "status": status},
        exc_info=detail if isinstance(detail, BaseException) and status == 500 else None,
    )
    return JSONResponse(
        {"error": message, "request_id": request_id},
        status_code=status,
        headers={REQUEST_ID_HEADER: request_id},
    )


async def unhandled(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an exception no route handled: a 500 without its text or traceback."""
    return server_error(request, 500, INTERNAL, exc)
