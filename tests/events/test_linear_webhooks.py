"""POST /webhooks/linear on a real HTTP server, dev server and PostgreSQL: a signed delivery
becomes one typed event of its Linear organization; anything unsigned, tampered, signed with
another secret or replayed late is a 401 and stores nothing; a redelivery is stored once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel, SecretStr
from temporalio.client import Client

import durable
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from api import create_app
from api.server import ApiServer
from api.webhooks import sign
from store import EventStore, create_pool
from workers.embedded import free_port
from workflows.linear_events import LinearIssueUpdated

from .conftest import Events
from .test_events import until_waiting
from .test_http import call
from .workflows import REGISTRY

SECRET = "lin_wh_current"
PREVIOUS = "lin_wh_previous"
ORG = "8f1c2d3e-0000-4000-8000-00000000aaaa"


def now_ms(offset_seconds: float = 0) -> int:
    return int((time.time() + offset_seconds) * 1000)


def issue_updated(issue_id: str, *, sent: int | None = None) -> dict[str, Any]:
    return {
        "action": "update",
        "type": "Issue",
        "organizationId": ORG,
        "webhookId": "wh-1",
        "webhookTimestamp": now_ms() if sent is None else sent,
        "createdAt": "2026-05-01T12:00:00.000Z",
        "url": "https://linear.app/acme/issue/ENG-42/fix-login",
        "actor": {"id": "user-1", "name": "Ada", "type": "user", "email": "ada@example.com"},
        "updatedFrom": {"stateId": "state-todo", "updatedAt": "2026-05-01T11:00:00.000Z"},
        "data": {
            "id": issue_id,
            "identifier": "ENG-42",
            "title": "Fix login",
            "teamId": "team-1",
            "stateId": "state-doing",
            "state": {"id": "state-doing", "name": "In Progress", "type": "started"},
            "assigneeId": "user-1",
            "priority": 2,
        },
    }


def agent_session(action: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "type": "AgentSessionEvent",
        "organizationId": ORG,
        "webhookId": "wh-2",
        "webhookTimestamp": now_ms(),
        "createdAt": "2026-05-01T12:00:00.000Z",
        "appUserId": "app-user-1",
        "oauthClientId": "oauth-1",
        "agentSession": {
            "id": "session-1",
            "issueId": "issue-7",
            "issue": {"id": "issue-7", "identifier": "ENG-7", "title": "Triage", "teamId": "t-2"},
            "commentId": "comment-1",
            "creator": {"id": "user-2", "name": "Grace", "email": "grace@example.com"},
            "status": "pending",
            "url": "https://linear.app/acme/issue/ENG-7#agent-session-1",
        },
    }
    if action == "created":
        payload["promptContext"] = "<issue identifier='ENG-7'>Triage</issue>"
    else:
        payload["agentActivity"] = {
            "id": "activity-1",
            "content": {"type": "prompt", "body": "please also check the logs"},
        }
    return payload


def comment_created() -> dict[str, Any]:
    return {
        "action": "create",
        "type": "Comment",
        "organizationId": ORG,
        "webhookId": "wh-3",
        "webhookTimestamp": now_ms(),
        "createdAt": "2026-05-01T12:00:00.000Z",
        "url": "https://linear.app/acme/issue/ENG-42#comment-c1",
        "actor": {"id": "user-1", "name": "Ada", "type": "user"},
        "data": {
            "id": "comment-9",
            "body": "Looks good",
            "issueId": "issue-42",
            "issue": {"id": "issue-42", "identifier": "ENG-42", "title": "Fix", "teamId": "t-1"},
            "userId": "user-1",
        },
    }


def post(
    address: str,
    body: bytes,
    *,
    signature: str | None = None,
    delivery: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Linear-Event": "Issue"}
    if signature is not None:
        headers["Linear-Signature"] = signature
    if delivery is not None:
        headers["Linear-Delivery"] = delivery
    return call("POST", f"{address}/webhooks/linear", body, headers)


async def deliver(
    address: str,
    payload: dict[str, Any],
    *,
    secret: str = SECRET,
    delivery: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST the payload as Linear does: signed, with a delivery id (fresh unless given)."""
    body = json.dumps(payload).encode()
    return await asyncio.to_thread(
        post, address, body, signature=sign(body, secret), delivery=delivery or str(uuid.uuid4())
    )


@asynccontextmanager
async def serving(
    client: durable.DurableClient, store: EventStore, secrets: Sequence[str] = (SECRET,)
) -> AsyncIterator[str]:
    app = create_app(
        client, REGISTRY, store, linear_webhook_secrets=[SecretStr(s) for s in secrets]
    )
    server = ApiServer(app, free_port())
    await server.start()
    try:
        yield server.address
    finally:
        await server.stop()


async def count(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events")
    return n


async def stored(pool: asyncpg.Pool, event_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT type, data, tenancy FROM events WHERE id = $1", event_id
    )
    assert row is not None, f"no event {event_id}"
    return row


async def test_a_signed_issue_update_is_one_typed_event_of_its_linear_organization(
    events: Events, pool: asyncpg.Pool
) -> None:
    delivery = str(uuid.uuid4())
    async with events.running() as client, serving(client, events.ingress.store) as address:
        status, receipt = await deliver(address, issue_updated("issue-1"), delivery=delivery)
    assert status == 200, receipt
    assert receipt["id"] == f"linear:{delivery}"
    assert (receipt["type"], receipt["duplicate"]) == ("linear/issue.updated", False)
    row = await stored(pool, f"linear:{delivery}")
    data = json.loads(row["data"])
    assert row["type"] == "linear/issue.updated"
    assert json.loads(row["tenancy"])["org_id"] == ORG
    assert {k: data[k] for k in ("action", "issue_id", "identifier", "team_id", "state")} == {
        "action": "update",
        "issue_id": "issue-1",
        "identifier": "ENG-42",
        "team_id": "team-1",
        "state": "In Progress",
    }
    assert data["changed"] == ["stateId", "updatedAt"]
    assert data["updated_from"]["stateId"] == "state-todo"
    assert data["actor"] == {"id": "user-1", "name": "Ada", "type": "user"}  # no email
    assert data["raw"]["priority"] == 2


@pytest.mark.parametrize(
    ("payload", "linear_type", "fields"),
    [
        (
            comment_created,
            "linear/comment.created",
            {"comment_id": "comment-9", "issue_id": "issue-42", "body": "Looks good"},
        ),
        (
            lambda: agent_session("created"),
            "linear/agent-session.created",
            {
                "session_id": "session-1",
                "issue_id": "issue-7",
                "identifier": "ENG-7",
                "team_id": "t-2",
                "prompt_context": "<issue identifier='ENG-7'>Triage</issue>",
                "actor": {"id": "user-2", "name": "Grace", "type": "user"},
            },
        ),
        (
            lambda: agent_session("prompted"),
            "linear/agent-session.prompted",
            {"session_id": "session-1", "prompt": "please also check the logs"},
        ),
    ],
)
async def test_comments_and_agent_sessions_become_their_events(
    events: Events,
    pool: asyncpg.Pool,
    payload: Callable[[], dict[str, Any]],
    linear_type: str,
    fields: dict[str, Any],
) -> None:
    async with events.running() as client, serving(client, events.ingress.store) as address:
        status, receipt = await deliver(address, payload())
    assert (status, receipt["type"]) == (200, linear_type), receipt
    row = await stored(pool, receipt["id"])
    data = json.loads(row["data"])
    assert {k: data[k] for k in fields} == fields
    assert json.loads(row["tenancy"])["org_id"] == ORG


def _tampered() -> tuple[bytes, str]:
    body = json.dumps(issue_updated("issue-t")).encode()
    return body.replace(b"Fix login", b"Fix logout"), sign(body, SECRET)


def _signed(payload: dict[str, Any] | bytes, secret: str = SECRET) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, sign(body, secret)


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (_tampered, 401, "Linear-Signature does not match"),
        (lambda: _signed(issue_updated("issue-w"), "someone-else"), 401, "does not match"),
        (lambda: (json.dumps(issue_updated("issue-n")).encode(), None), 401, "no Linear-Sig"),
        (
            lambda: _signed(issue_updated("issue-s", sent=now_ms(-5 * 60))),
            401,
            "s old; more than 60 s is refused",
        ),
        (
            lambda: _signed(issue_updated("issue-f", sent=now_ms(+5 * 60))),
            401,
            "in the future",
        ),
        (lambda: _signed(b"{not json"), 400, "body is not valid JSON"),
        (lambda: _signed({"type": "Issue", "action": "update"}), 400, "webhookTimestamp"),
        (
            lambda: _signed({**issue_updated("issue-o"), "organizationId": None}),
            400,
            "org_id",
        ),
    ],
    ids=["tampered", "wrong-secret", "unsigned", "stale", "future", "not-json", "no-ts", "no-org"],
)
async def test_refused_deliveries_say_why_and_store_nothing(
    events: Events,
    pool: asyncpg.Pool,
    request_: Callable[[], tuple[bytes, str | None]],
    status: int,
    message: str,
) -> None:
    body, signature = request_()
    before = await count(pool)
    async with events.running() as client, serving(client, events.ingress.store) as address:
        got, answer = await asyncio.to_thread(
            post, address, body, signature=signature, delivery=str(uuid.uuid4())
        )
    assert (got, message in answer.get("error", "")) == (status, True), answer
    assert await count(pool) == before


async def test_both_secrets_are_accepted_during_a_rotation(
    events: Events, pool: asyncpg.Pool
) -> None:
    async with (
        events.running() as client,
        serving(client, events.ingress.store, [SECRET, PREVIOUS]) as address,
    ):
        new = await deliver(address, issue_updated("issue-r1"), secret=SECRET)
        old = await deliver(address, issue_updated("issue-r2"), secret=PREVIOUS)
        other = await deliver(address, issue_updated("issue-r3"), secret="retired")
    assert (new[0], old[0], other[0]) == (200, 200, 401)


async def test_the_same_delivery_twice_makes_one_event(events: Events, pool: asyncpg.Pool) -> None:
    delivery = str(uuid.uuid4())
    before = await count(pool)
    async with events.running() as client, serving(client, events.ingress.store) as address:
        first = await deliver(address, issue_updated("issue-d"), delivery=delivery)
        # A retry is signed again at its own time: the body differs, the delivery id does not.
        again = await deliver(address, issue_updated("issue-d", sent=now_ms(1)), delivery=delivery)
    assert (first[0], first[1]["duplicate"]) == (200, False)
    assert (again[0], again[1]["duplicate"], again[1]["id"]) == (200, True, first[1]["id"])
    assert await count(pool) == before + 1


async def test_without_a_delivery_id_the_same_body_twice_makes_one_event(
    events: Events, pool: asyncpg.Pool
) -> None:
    body, signature = _signed(issue_updated("issue-b"))
    before = await count(pool)
    async with events.running() as client, serving(client, events.ingress.store) as address:
        first = await asyncio.to_thread(post, address, body, signature=signature)
        again = await asyncio.to_thread(post, address, body, signature=signature)
    assert first[1]["id"].startswith("linear:sha256:")
    assert (first[1]["duplicate"], again[1]["duplicate"]) == (False, True)
    assert await count(pool) == before + 1


async def test_types_we_make_no_event_of_are_acknowledged_and_ignored(
    events: Events, pool: asyncpg.Pool
) -> None:
    project = {**issue_updated("p-1"), "type": "Project"}
    comment_removed = {**comment_created(), "action": "remove"}
    before = await count(pool)
    async with events.running() as client, serving(client, events.ingress.store) as address:
        answers = [await deliver(address, p) for p in (project, comment_removed)]
    assert [a[0] for a in answers] == [200, 200]
    assert [a[1]["ignored"] for a in answers] == [True, True]
    assert answers[0][1]["reason"] == "Linear Project update is not turned into an event"
    assert await count(pool) == before


async def test_without_secrets_the_endpoint_says_it_is_not_configured(
    events: Events, pool: asyncpg.Pool
) -> None:
    before = await count(pool)
    async with events.running() as client, serving(client, events.ingress.store, []) as address:
        status, answer = await deliver(address, issue_updated("issue-u"))
    assert status == 503
    assert "LINEAR_WEBHOOK_SECRETS" in answer["error"]
    assert await count(pool) == before


async def test_a_body_over_the_limit_is_413(events: Events, pool: asyncpg.Pool) -> None:
    payload = issue_updated("issue-big")
    payload["data"]["description"] = "x" * (1024 * 1024)
    body = json.dumps(payload).encode()
    async with events.running() as client, serving(client, events.ingress.store) as address:
        # The server answers from the declared length, before reading the body (and closes the
        # connection), so the client sends the headers and reads the answer: sending all of
        # the body first would race the close.
        host, port = address.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            (
                f"POST /webhooks/linear HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Linear-Signature: {sign(body, SECRET)}\r\n"
                f"Linear-Delivery: {uuid.uuid4()}\r\nLinear-Event: Issue\r\n\r\n"
            ).encode()
            + body[:1024]
        )
        await writer.drain()
        answer = (await asyncio.wait_for(reader.read(), 10)).decode()
        writer.close()
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert json.loads(answer.split("\r\n\r\n", 1)[1]) == {
        "error": f"body is over the limit of {1024 * 1024} bytes"
    }


async def test_a_large_issue_keeps_its_fields_and_drops_linears_object(
    events: Events, pool: asyncpg.Pool
) -> None:
    payload = issue_updated("issue-long")
    payload["data"]["description"] = "x" * (400 * 1024)  # under 1 MiB, over an event's 256 KiB
    async with events.running() as client, serving(client, events.ingress.store) as address:
        status, receipt = await deliver(address, payload)
    assert status == 200, receipt
    data = json.loads((await stored(pool, receipt["id"]))["data"])
    assert (data["issue_id"], data["raw"], data["raw_dropped"]) == ("issue-long", {}, True)


async def test_503_when_the_event_store_is_unreachable(
    dev_client: Client, database_url: str, task_queue: str
) -> None:
    closed = await create_pool(database_url)
    await closed.close()
    store = EventStore(closed)
    ingress = EventIngress(dev_client, store, REGISTRY, task_queue)
    client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
    delivery = str(uuid.uuid4())
    async with serving(client, store) as address:
        status, answer = await deliver(address, issue_updated("issue-down"), delivery=delivery)
    assert status == 503
    assert f"'linear:{delivery}'" in answer["error"] and "Send it again" in answer["error"]


# A workflow waiting for an update of one issue, in this module's own registry.


class Watch(BaseModel):
    issue_id: str


class Seen(BaseModel):
    event_id: str = ""
    state: str = ""
    changed: list[str] = []
    timed_out: bool = False


@durable.workflow("tests/linear-issue.watch")
async def watch_issue(ctx: durable.WorkflowContext, input: Watch) -> Seen:
    update = await ctx.step.wait_for_event(
        "issue-updated", LinearIssueUpdated, where={"data.issue_id": input.issue_id}, timeout="1h"
    )
    if update is None:
        return Seen(timed_out=True)
    return Seen(event_id=update.id, state=update.data.state, changed=update.data.changed)


WATCH = durable.Registry([watch_issue])


async def test_an_issue_update_resolves_the_run_waiting_for_that_issue(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    issue = f"issue-{uuid.uuid4()}"
    ingress = EventIngress(dev_client, EventStore(pool), WATCH, task_queue)
    client = TemporalDurableClient(dev_client, WATCH, task_queue, events=ingress)
    async with (
        # This module imports pytest and the HTTP server: share it with the sandbox rather
        # than have the sandbox re-import it.
        build_worker(dev_client, WATCH, task_queue, events=ingress, extra_passthrough=[__name__]),
        serving(client, ingress.store) as address,
    ):
        # A webhook's event belongs to its Linear workspace: runs of that org wait for it.
        of_org = durable.Tenancy(org_id=ORG)
        waiting = await client.start(watch_issue, Watch(issue_id=issue), tenancy=of_org)
        other = await client.start(watch_issue, Watch(issue_id=f"{issue}-other"), tenancy=of_org)
        elsewhere = await client.start(
            watch_issue, Watch(issue_id=issue), tenancy=durable.Tenancy(org_id="org-other")
        )
        await until_waiting(client, waiting.workflow_id)
        await until_waiting(client, elsewhere.workflow_id)
        status, receipt = await deliver(address, issue_updated(issue))
        out = await asyncio.wait_for(waiting.result(), 30)
        await other.cancel("test over")
        await elsewhere.cancel("test over")
    assert (status, receipt["delivered"]) == (200, [waiting.workflow_id]), "not another org's run"
    assert out == Seen(
        event_id=receipt["id"], state="In Progress", changed=["stateId", "updatedAt"]
    )
