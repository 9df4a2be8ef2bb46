"""`POST /webhooks/linear`: Linear's webhooks, verified and sent through the one event ingress
(`DurableClient.send_event`) as typed events (`workflows.linear_events`).

Answers, in the order they are checked (every refusal is `{"error": "..."}` and stores nothing):

- 503: no signing secret is configured (`LINEAR_WEBHOOK_SECRETS`). A server error, not a 404:
  Linear retries, so deliveries made before the operator sets the secret are not all lost.
- 413: the body is over 1 MiB.
- 401: `Linear-Signature` is missing, or is not the hex HMAC-SHA256 of the raw body under any
  configured secret.
- 400: the body is not a JSON object (or is JSON this API refuses anywhere: NaN, Infinity, an
  integer of over 100 digits, nesting deeper than 64 levels, a NUL character in a string;
  `api/json_input.py`), or has no `webhookTimestamp` of Unix milliseconds (0 to 2^53).
- 401: `webhookTimestamp` is more than 60 s from this server's clock. It is signed, so this is
  a replay of a genuine delivery (or a clock far off): an authentication failure like a bad
  signature, not a malformed request.
- 200 `{"ignored": true, ...}`: a Linear type and action that no event is made of; nothing is
  stored. 200, because Linear retries anything else and would do so in vain.
- 400: the payload lacks what its event needs (an id, the organization).
- 503: the event store is unreachable; Linear retries the delivery, and the same delivery id
  makes the same event id, so a delivery that was in fact stored is not acted on twice.
- 200 with the receipt, only once the event is committed (`duplicate: true` for a delivery
  seen before).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from durable import (
    DurableClient,
    Event,
    EventConflict,
    EventError,
    EventNotAcknowledged,
    parse_event,
)
from workflows.linear_events import WEBHOOK_EVENTS, webhook_data

from .bodies import read_limited
from .errors import server_error
from .events import not_acknowledged
from .json_input import BadJson, parse_json

log = logging.getLogger(__name__)

PATH = "/webhooks/linear"
MAX_BODY_BYTES = 1024 * 1024
MAX_CLOCK_SKEW_SECONDS = 60.0
# Linear sends Date.now(); past 2^53 a JavaScript number is no longer a whole millisecond.
MAX_TIMESTAMP = 2**53
SIGNATURE_HEADER = "Linear-Signature"
DELIVERY_HEADER = "Linear-Delivery"
# Linear sends a UUID; anything else that is short and plain is kept as given.
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{1,100}$")


def sign(body: bytes, secret: str) -> str:
    """The `Linear-Signature` of a body: hex HMAC-SHA256 keyed by the webhook's secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, signature: str, secrets: Sequence[SecretStr]) -> bool:
    """Whether `signature` signs `body` under one of `secrets`, compared in constant time."""
    given = signature.strip().lower().encode()
    return any(
        hmac.compare_digest(sign(body, secret.get_secret_value()).encode(), given)
        for secret in secrets
    )


def event_id(delivery: str | None, body: bytes) -> str:
    """The event id of a delivery: from `Linear-Delivery`, so a redelivery is stored once;
    without it, from the body, so only a byte-identical resend is."""
    if delivery:
        return f"linear:{delivery}"
    return f"linear:sha256:{hashlib.sha256(body).hexdigest()}"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _refuse(request: Request, message: str) -> JSONResponse:
    peer = request.client.host if request.client else "unknown"
    log.warning("Linear webhook refused: %s", message, extra={"peer": peer})
    return _error(401, message)


def _event(event_type: type[Event[Any]], payload: dict[str, Any], id: str) -> Event[Any]:
    """The event for a verified payload. Raises EventError (the payload does not fit, or is
    too large even without `raw`)."""
    data = webhook_data(payload)
    document = {"id": id, "data": data, "tenancy": {"org_id": data["organization_id"]}}
    try:
        return parse_event(event_type, document)
    except EventError as err:
        if "the limit is" not in str(err):
            raise
    # Too large: keep the typed fields, drop Linear's object (a long description, say).
    document["data"] = {**data, "raw": {}, "raw_dropped": True}
    return parse_event(event_type, document)


def linear_webhook_routes(client: DurableClient, secrets: Sequence[SecretStr]) -> list[Route]:
    """The route `POST /webhooks/linear`, verifying against `secrets` (current first, then the
    one being rotated out); with none, it answers 503 "not configured"."""
    secrets = list(secrets)

    async def receive(request: Request) -> JSONResponse:
        if not secrets:
            return server_error(
                request,
                503,
                "Linear webhooks are not configured: set LINEAR_WEBHOOK_SECRETS to the "
                "webhook's signing secret",
                "no LINEAR_WEBHOOK_SECRETS configured",
            )
        body = await read_limited(request, MAX_BODY_BYTES)
        if isinstance(body, str):
            return _error(413, body)
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            return _refuse(request, f"no {SIGNATURE_HEADER} header")
        if not signature_matches(body, signature, secrets):
            return _refuse(request, f"{SIGNATURE_HEADER} does not match the body")
        try:  # signed: only Linear's bodies are parsed at all
            payload = parse_json(body)
        except BadJson as err:
            return _error(400, str(err))
        if not isinstance(payload, dict):
            return _error(400, "body must be a JSON object (a Linear webhook payload)")
        sent = payload.get("webhookTimestamp")
        if isinstance(sent, bool) or not isinstance(sent, int | float):
            return _error(400, "payload has no numeric webhookTimestamp (Unix milliseconds)")
        if not 0 <= sent <= MAX_TIMESTAMP:
            return _error(
                400, f"webhookTimestamp must be Unix milliseconds, from 0 to {MAX_TIMESTAMP}"
            )
        skew = time.time() - sent / 1000
        if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
            when = "old" if skew > 0 else "in the future"
            return _refuse(
                request,
                f"webhookTimestamp is {abs(skew):.0f} s {when}; more than "
                f"{MAX_CLOCK_SKEW_SECONDS:.0f} s is refused as a possible replay",
            )
        kind, action = payload.get("type"), payload.get("action")
        event_type = None
        if isinstance(kind, str) and isinstance(action, str):
            event_type = WEBHOOK_EVENTS.get((kind, action))
        if event_type is None:
            return JSONResponse(
                {
                    "ignored": True,
                    "reason": f"Linear {kind} {action} is not turned into an event",
                    "linear_type": kind,
                    "action": action,
                }
            )
        delivery = request.headers.get(DELIVERY_HEADER)
        if delivery is not None and not _DELIVERY_ID.match(delivery):
            return _error(400, f"{DELIVERY_HEADER} header is malformed")
        try:
            event = _event(event_type, payload, event_id(delivery, body))
        except EventError as err:
            status = 413 if "the limit is" in str(err) else 400
            return _error(status, str(err))
        try:
            receipt = await client.send_event(event)
        except EventNotAcknowledged as err:  # the store is down: Linear retries, same id
            return server_error(request, 503, not_acknowledged(event.id), err)
        except EventConflict:
            # A retry of a delivery is signed anew: its body (its timestamp) differs, its
            # delivery id does not. The signed delivery id decides: it was received before.
            return JSONResponse({"id": event.id, "type": event.type, "duplicate": True})
        except EventError as err:  # no event store configured
            return server_error(request, 503, "this server keeps no events; try again later", err)
        return JSONResponse(receipt.model_dump(mode="json"))

    return [Route(PATH, receive, methods=["POST"])]
