"""5xx answers say something generic and give a request id; the exception's text (an errno, a
refused connection, the DSN) goes only to the log, under that request id."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from typing import Any

import pytest
from temporalio.client import Client

from adapters.temporal import EventIngress, TemporalDurableClient
from api import create_app
from api.auth import Authenticator, Principal
from api.server import ApiServer
from store import EventStore, KeyStore
from tests.events.test_outage import own_postgres
from tests.events.workflows import REGISTRY
from tests.keys import bearer, make_key
from workers.embedded import free_port

Answer = tuple[int, dict[str, Any], dict[str, str]]


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def with_request_id(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "durable.api" and getattr(r, "request_id", None) == request_id
    ]


async def test_503s_while_postgres_is_down_carry_a_request_id_and_no_exception_text(
    dev_client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with own_postgres() as (postgres, pool):
        where = str(postgres.data_dir.parent)  # its data dir and socket are under it
        store = EventStore(pool)
        ingress = EventIngress(dev_client, store, REGISTRY, task_queue)
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
        server = ApiServer(create_app(client, REGISTRY, store), free_port())
        await server.start()
        key, unchecked = await make_key(pool, "org-err"), await make_key(pool, "org-err")
        base = server.address
        try:
            # The API keeps a verified key for 10 s: this one works while the database is down.
            warm = await asyncio.to_thread(call, "GET", f"{base}/events/x", None, bearer(key))
            await postgres.crash()
            body = {
                "type": "tests/approval.resolved",
                "id": "down-1",
                "data": {"request_id": "r", "decision": "approve"},
            }
            with caplog.at_level(logging.ERROR, logger="durable.api"):
                answers = {
                    "POST /events": await asyncio.to_thread(
                        call, "POST", f"{base}/events", body, bearer(key)
                    ),
                    "GET /events/x": await asyncio.to_thread(
                        call, "GET", f"{base}/events/x", None, bearer(key)
                    ),
                    "GET /runs/x/steps": await asyncio.to_thread(
                        call, "GET", f"{base}/runs/x/steps", None, bearer(key)
                    ),
                    "GET /sessions/x": await asyncio.to_thread(
                        call, "GET", f"{base}/sessions/x", None, bearer(key)
                    ),
                    "unchecked key": await asyncio.to_thread(
                        call, "GET", f"{base}/events/x", None, bearer(unchecked)
                    ),
                }
            await postgres.start_again()
        finally:
            await server.stop()
    assert warm[0] == 404
    for what, (status, answer, headers) in answers.items():
        assert status == 503, (what, answer)
        assert set(answer) == {"error", "request_id"}, (what, answer)
        request_id = answer["request_id"]
        assert len(request_id) == 32 and headers["x-request-id"] == request_id, (what, headers)
        text = json.dumps(answer)
        for leak in ("Errno", "Connection refused", "Connect call failed", "postgresql://", where):
            assert leak not in text, (what, leak, answer)
        assert unchecked not in text
        logged = with_request_id(caplog, request_id)
        assert len(logged) == 1, (what, [r.getMessage() for r in caplog.records])
        record = logged[0]
        assert record.path == answers_path(what), (what, record.path)  # type: ignore[attr-defined]
        detail = record.getMessage()
        assert "Errno" in detail and request_id in detail, (what, detail)
    assert "'down-1'" in answers["POST /events"][1]["error"]
    assert "Send it again with the same id" in answers["POST /events"][1]["error"]
    assert "unreachable" in answers["GET /events/x"][1]["error"]
    assert "cannot check the API key now" in answers["unchecked key"][1]["error"]


def answers_path(what: str) -> str:
    return "/events/x" if what == "unchecked key" else what.split(" ", 1)[1]


class Exploding(Authenticator):
    async def principal(self, request: Any) -> Principal:
        raise RuntimeError("boom at postgresql://app:s3cret@db.internal/app")


async def test_an_unhandled_exception_is_a_500_with_a_request_id_and_no_traceback(
    dev_client: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with own_postgres() as (_, pool):
        store = EventStore(pool)
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue)
        auth = Exploding(KeyStore(pool))
        server = ApiServer(create_app(client, REGISTRY, store, auth=auth), free_port())
        await server.start()
        try:
            with caplog.at_level(logging.ERROR, logger="durable.api"):
                status, answer, headers = await asyncio.to_thread(
                    call, "GET", f"{server.address}/events/x", None, bearer("dk_x")
                )
        finally:
            await server.stop()
    assert status == 500, answer
    assert set(answer) == {"error", "request_id"}
    assert headers["x-request-id"] == answer["request_id"]
    for leak in ("boom", "s3cret", "db.internal", "Traceback", "RuntimeError"):
        assert leak not in json.dumps(answer), leak
    (record,) = with_request_id(caplog, answer["request_id"])
    assert "boom" in record.getMessage() and record.exc_info is not None
