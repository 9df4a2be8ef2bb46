"""POST /events and GET /events/{id} on a real HTTP server: every refusal is a 4xx that says
why and stores nothing; 202 only after the event is committed."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import asyncpg
import pytest

from api import create_app
from api.server import ApiServer
from tests.keys import bearer, make_key
from workers.embedded import free_port

from .conftest import Events
from .test_events import until_waiting
from .workflows import REGISTRY


def call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 422, 'body must be an object like {"type"'),
        (b'{"type": "tests/nope.thing", "data": {}}', 422, "unknown event type 'tests/nope.thing'"),
        (b'{"type": "Bad Name", "data": {}}', 422, "unknown event type 'Bad Name'"),
        (
            b'{"type": "tests/approval.resolved", "data": {"request_id": "r", "decision": "ok"},'
            b' "colour": "red"}',
            422,
            "Extra inputs are not permitted",
        ),
        (
            b'{"type": "tests/approval.resolved", "data": {"request_id": "r"}}',
            422,
            "decision",
        ),
        (
            b'{"type": "tests/approval.resolved", "data": {"request_id": "a\\u0000b",'
            b' "decision": "ok"}}',
            422,
            "NUL character",
        ),
        (
            b'{"type": "tests/approval.resolved", "data": {"request_id": "r", "decision": "'
            + b"x" * (300 * 1024)
            + b'"}}',
            413,
            "limit",
        ),
    ],
)
async def test_bad_requests_get_a_4xx_that_says_why_and_store_nothing(
    events: Events, pool: asyncpg.Pool, body: bytes, status: int, message: str
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM events")
    key = await make_key(pool, "org-http")
    async with events.running() as client:
        server = ApiServer(create_app(client, REGISTRY, events.ingress.store), free_port())
        await server.start()
        try:
            got, answer = await asyncio.to_thread(
                call, "POST", f"{server.address}/events", body, bearer(key)
            )
        finally:
            await server.stop()
    assert got == status
    assert message in answer["error"]
    assert await pool.fetchval("SELECT count(*) FROM events") == before


async def test_an_event_posted_over_http_resolves_a_wait_and_can_be_looked_up(
    events: Events, pool: asyncpg.Pool
) -> None:
    request = f"req-{uuid.uuid4()}"
    auth = bearer(await make_key(pool, "org-http"))
    async with events.running() as client:
        server = ApiServer(create_app(client, REGISTRY, events.ingress.store), free_port())
        await server.start()
        try:
            trigger = {"type": "tests/approval.requested", "data": {"request_id": request}}
            status, started = await asyncio.to_thread(
                call, "POST", f"{server.address}/events", json.dumps(trigger).encode(), auth
            )
            assert status == 202
            run_id = started["started"][0]
            await until_waiting(client, run_id)
            answer = {
                "type": "tests/approval.resolved",
                "id": f"answer-{request}",
                "data": {"request_id": request, "decision": "approve"},
            }
            status, receipt = await asyncio.to_thread(
                call, "POST", f"{server.address}/events", json.dumps(answer).encode(), auth
            )
            assert (status, receipt["delivered"]) == (202, [run_id])
            out = await client.get(run_id).result()
            status, found = await asyncio.to_thread(
                call, "GET", f"{server.address}/events/answer-{request}", None, auth
            )
            missing, _ = await asyncio.to_thread(
                call, "GET", f"{server.address}/events/nope", None, auth
            )
        finally:
            await server.stop()
    assert out.decisions == ["approve"]
    assert status == 200
    assert found["type"] == "tests/approval.resolved"
    (delivery,) = found["deliveries"]
    assert delivery == {
        "kind": "signal",
        "workflow_id": run_id,
        "run_id": delivery["run_id"],
        "step_id": "await-approval",
        "state": "delivered",
    }
    assert delivery["run_id"] and delivery["run_id"] != run_id, (
        "Temporal's run id, not the workflow id"
    )
    assert missing == 404


async def test_get_event_shows_throttled_and_delayed_starts(
    events: Events, pool: asyncpg.Pool
) -> None:
    conversation = f"conv-{uuid.uuid4()}"
    auth = bearer(await make_key(pool, "org-http"))
    async with events.running() as client:
        server = ApiServer(create_app(client, REGISTRY, events.ingress.store), free_port())
        await server.start()
        try:
            ids = [f"msg-{uuid.uuid4()}" for _ in range(3)]
            for event_id in ids:
                body = {
                    "type": "tests/message.received",
                    "id": event_id,
                    "data": {"conversation_id": conversation},
                }
                status, _ = await asyncio.to_thread(
                    call, "POST", f"{server.address}/events", json.dumps(body).encode(), auth
                )
                assert status == 202
            status, found = await asyncio.to_thread(
                call, "GET", f"{server.address}/events/{ids[2]}", None, auth
            )
        finally:
            await server.stop()
            await client.get(f"tests/throttled.run:@org-http/{ids[2]}").temporal.terminate("over")
    assert status == 200
    by_run = {d["workflow_id"]: d for d in found["deliveries"]}
    skipped = by_run[f"tests/dedupe.run:@org-http/{ids[2]}"]
    assert skipped["state"] == "throttled" and "starts_in_seconds" not in skipped
    delayed = by_run[f"tests/throttled.run:@org-http/{ids[2]}"]
    assert delayed["state"] == "delivered"
    assert 3500 < delayed["starts_in_seconds"] <= 3600, "the third start in an hour waits"
