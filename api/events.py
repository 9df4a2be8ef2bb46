"""`POST /events` (the HTTP face of `send_event`) and `GET /events/{id}`, for a principal.

What a caller may send, checked before anything is stored (every refusal is
`{"error": "..."}` and stores nothing; 202 comes only after the event is committed):

- 413 for a body over MAX_BODY_BYTES (refused once that much has arrived; no more is read);
  400 for one that is not JSON this API takes (nested deeper than 64 levels, NaN, Infinity,
  an integer of over 100 digits: `api/json_input.py`); 422 for a NUL character anywhere.
- 415 unless `Content-Type: application/json` (a web page cannot send that cross-origin without
  a preflight, which nothing here answers).
- 401 without a valid credential, 403 without the scope the event needs: `approve` for
  `rensei/approval.resolved` (and the run's workflow may ask for more, `durable.Approvers`),
  `runs:start` for a type that starts runs, `events:send` for any other.
- 403 for a type the API never takes (`linear/*`: the signed webhook only; agent-session and
  `durable/*` events: the platform's own workers only), and for a body whose `tenancy` names
  another org. The event's org is the principal's.
- 409 for an id sent before with another type, other data or another org.

Event ids are per org: the store keeps `@<org>/<id>`, which no platform-made id can be, so
nobody can take an id first that another org or the platform will use. Callers see their own
id; the run ids an event starts carry the stored one.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from durable import (
    MAX_EVENT_BYTES,
    MAX_EVENT_ID,
    DurableClient,
    EventConflict,
    EventError,
    EventNotAcknowledged,
    EventTrigger,
    Registry,
    UnknownRun,
    parse_event,
    reserved_producer,
    scoped_event_id,
)
from store import CONNECTION_ERRORS, EventStore
from workers.runtime import TemporalUnreachable

from .auth import Principal
from .bodies import read_json
from .errors import server_error

# The envelope ({"type", "id"}) may add a little to the event's own limit.
MAX_BODY_BYTES = MAX_EVENT_BYTES + 4096
APPROVAL = "rensei/approval.resolved"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def not_acknowledged(event_id: str) -> str:
    """What a caller is told of an event the store could not take (no exception text)."""
    return (
        f"event {event_id!r} was not acknowledged: the event store is unreachable. Send it "
        f"again with the same id; a duplicate is acted on once"
    )


async def read_json_body(request: Request, limit: int) -> dict[str, Any] | JSONResponse:
    """The body as a JSON object, or the refusal: 415, 413, 400 (not JSON, nested deeper than
    `api.json_input.MAX_JSON_DEPTH`, a NUL character in a string), 422."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        return _error(415, "send the body as JSON, with 'Content-Type: application/json'")
    payload = await read_json(request, limit)
    if isinstance(payload, JSONResponse):
        return payload
    if not isinstance(payload, dict):
        return _error(422, 'body must be an object like {"type": "...", "data": {...}}')
    return payload


class EventRoutes:
    def __init__(self, client: DurableClient, registry: Registry, store: EventStore) -> None:
        self.client = client
        self.registry = registry
        self.store = store

    def _scope_for(self, event_type: str) -> str:
        if event_type == APPROVAL:
            return "approve"
        starts = any(
            isinstance(wf.trigger, EventTrigger) and wf.trigger.event == event_type
            for wf in self.registry.workflows
        )
        return "runs:start" if starts else "events:send"

    async def _approval_refused(
        self, request: Request, principal: Principal, data: Any
    ) -> JSONResponse | None:
        """Whether `principal` may answer the approval of the run `data.workflow_id` names:
        404 for a run that does not exist or belongs to another org (the same answer), 403 for
        an approver its workflow does not accept."""
        named = data.get("workflow_id", data.get("run_id")) if isinstance(data, dict) else None
        if not isinstance(named, str) or not named:
            return None  # the event model says what is missing
        workflow_id = named
        try:
            desc = await self.client.get(workflow_id).describe()
        except UnknownRun:
            return _error(404, f"no run with workflow id {workflow_id!r}")
        except TemporalUnreachable as err:
            return server_error(
                request, 503, "cannot find the run now: Temporal is unreachable; try again", err
            )
        if (desc.tenancy.org_id if desc.tenancy else "") != principal.org_id:
            return _error(404, f"no run with workflow id {workflow_id!r}")
        workflow = next((w for w in self.registry.workflows if w.id == desc.workflow), None)
        if workflow is not None and not workflow.approvers.allow(principal.name, principal.scopes):
            who = workflow.approvers
            needs = f"the scope {who.scope!r}" + (
                f" and to be one of {', '.join(who.principals)}" if who.principals else ""
            )
            return _error(
                403, f"{principal.name} may not approve {desc.workflow} runs: it needs {needs}"
            )
        return None

    async def post(self, request: Request, principal: Principal) -> JSONResponse:
        payload = await read_json_body(request, MAX_BODY_BYTES)
        if isinstance(payload, JSONResponse):
            return payload
        event_type = payload.pop("type", None)
        if not isinstance(event_type, str):
            return _error(422, 'body must be an object like {"type": "...", "data": {...}}')
        reserved = reserved_producer(event_type)
        if reserved is not None:
            prefix, producer = reserved
            return _error(403, f"events of type {prefix}* {producer}; the API refuses them")
        scope = self._scope_for(event_type)
        if not principal.can(scope):
            return _error(403, f"{principal.name} lacks the scope {scope!r} to send {event_type}")
        tenancy = payload.get("tenancy")
        if (
            isinstance(tenancy, dict)
            and tenancy.get("org_id", principal.org_id) != principal.org_id
        ):
            return _error(
                403,
                f"{principal.name} acts for org {principal.org_id!r} and may not send events"
                f" for org {tenancy.get('org_id')!r}",
            )
        payload["tenancy"] = {
            **(tenancy if isinstance(tenancy, dict) else {}),
            "org_id": principal.org_id,
        }
        given = payload.get("id", str(uuid.uuid4()))
        if not isinstance(given, str) or not given:
            return _error(422, "id must be a non-empty string")
        payload["id"] = scoped_event_id(principal.org_id, given)
        if len(payload["id"]) > MAX_EVENT_ID:
            return _error(
                422, f"id is too long: with the org it must fit {MAX_EVENT_ID} characters"
            )
        if event_type == APPROVAL:
            data = payload.get("data")
            refused = await self._approval_refused(request, principal, data)
            if refused is not None:
                return refused
            if isinstance(data, dict):
                data["by"], data["via"] = principal.name, "api"
        try:
            event = parse_event(self.registry.event_type(event_type), payload)
            receipt = await self.client.send_event(event)
        except EventConflict:
            return _error(409, str(EventConflict(given)))
        except EventError as err:
            status = 413 if "the limit is" in str(err) else 422
            return _error(status, str(err).replace(payload["id"], given))
        except EventNotAcknowledged as err:  # the store is down: retry later, same id
            return server_error(request, 503, not_acknowledged(given), err)
        body = receipt.model_dump(mode="json")
        body["id"] = given
        return JSONResponse(body, status_code=202)

    async def get(self, request: Request, principal: Principal) -> JSONResponse:
        given = request.path_params["event_id"]
        try:
            org_id = principal.org_id
            stored = await self.store.get(scoped_event_id(org_id, given), org_id=org_id)
            found = await self.store.deliveries_of(stored.id, org_id=org_id) if stored else []
        except CONNECTION_ERRORS as err:
            return server_error(request, 503, "the event store is unreachable; try again", err)
        if stored is None:
            return _error(404, f"no event with id {given!r}")
        deliveries: list[dict[str, Any]] = []
        for d, state in found:
            entry: dict[str, Any] = {
                "kind": d.kind,
                "workflow_id": d.workflow_id,
                "run_id": d.run_id or None,
                "step_id": d.step_id or None,
                "state": state,
            }
            if d.delay_seconds > 0:  # a throttled start that has not begun yet
                entry["starts_in_seconds"] = round(d.delay_seconds)
            deliveries.append(entry)
        return JSONResponse(
            {
                "id": given,
                "type": stored.type,
                "data": stored.data,
                "received_at": stored.received_at.isoformat(),
                "deliveries": deliveries,
            }
        )
