"""A body over a route's limit is refused with a 413 as soon as the limit is passed (at once
when Content-Length says so), and the server reads no more of it than a little drain: the
answer closes the connection, so a client still sending finds it closed long before it has
sent the body.

What is asserted is what a client sees: the 413 (and its message) arrives while the client is
still sending, and the connection then closes with most of the body unsent. A server that read
the body whole, or read and dropped the rest to keep the connection, would take all of it; no
assert depends on how fast anything runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from temporalio.client import Client

from api.codec import MAX_BODY_BYTES as CODEC_LIMIT
from api.events import MAX_BODY_BYTES as EVENTS_LIMIT
from api.fleet_bodies import MAX_BODY_BYTES as FLEET_LIMIT
from api.guard import DRAIN_BYTES
from api.webhooks import MAX_BODY_BYTES as WEBHOOK_LIMIT

from .served import Served, served

TOTAL = 128 * 1024 * 1024
CHUNK = 65536


@pytest.fixture
async def api(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[Served]:
    async with served(dev_client, pool, task_queue) as running:
        yield running


@dataclass
class Sent:
    status: int
    headers: str
    body: dict[str, str]
    sent: int  # body bytes the client got to send before the connection closed


async def send_huge(api: Served, path: str, headers: dict[str, str], *, declared: bool) -> Sent:
    """POST a TOTAL-byte body in chunks (chunked, or with its Content-Length), reading the
    answer while sending, as curl does."""
    host, port = str(api.http.base_url).removeprefix("http://").rstrip("/").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = f"Content-Length: {TOTAL}" if declared else "Transfer-Encoding: chunked"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{head}"
        f"{framing}\r\n\r\n".encode()
    )
    sent = 0
    chunk = b" " * CHUNK if declared else b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)

    async def sending() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while sent < TOTAL:
                writer.write(chunk)
                await writer.drain()
                sent += CHUNK

    sender = asyncio.create_task(sending())
    answer = b""
    with contextlib.suppress(ConnectionError):
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            more = await asyncio.wait_for(reader.read(65536), 60)
            if not more:
                break
            answer += more
    await asyncio.wait_for(sender, 120)  # ends when the server closes (or all is sent)
    writer.close()
    head_text, _, body = answer.decode().partition("\r\n\r\n")
    return Sent(int(head_text.split()[1]), head_text.lower(), json.loads(body), sent)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


ROUTES = [
    # path, credential, the route's limit, the answer's status and a part of its message
    ("/api/workers/register", "registration", FLEET_LIMIT, 413, "over the limit"),
    ("/api/workers/{worker}/heartbeat", "worker", FLEET_LIMIT, 413, "over the limit"),
    ("/api/sessions/any/progress", "worker", FLEET_LIMIT, 413, "over the limit"),
    ("/api/sessions/any/output", "worker", FLEET_LIMIT, 413, "over the limit"),
    ("/api/execution/pools", "admin", FLEET_LIMIT, 413, "over the limit"),
    ("/api/projects/atlas/tokens", "admin", FLEET_LIMIT, 413, "over the limit"),
    ("/events", "member", EVENTS_LIMIT, 413, "over the limit"),
    ("/codec/encode", "none", CODEC_LIMIT, 413, "over the limit"),
    ("/codec/decode", "none", CODEC_LIMIT, 413, "over the limit"),
    ("/webhooks/linear", "none", WEBHOOK_LIMIT, 413, "over the limit"),
    # An answer before the body is read at all closes the same way.
    ("/events", "none", 0, 401, "needs a credential"),
    ("/api/workers/register", "bogus", 0, 401, "unauthorized"),
]


async def _credential(api: Served, name: str) -> dict[str, str]:
    if name == "registration":
        return await api.registration()
    if name == "bogus":
        return {"Authorization": "Bearer not-a-token"}
    return {"none": {}, "member": api.member, "worker": api.worker, "admin": api.admin}[name]


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize(("path", "credential", "limit", "status", "message"), ROUTES)
async def test_a_huge_body_is_refused_while_it_is_sent_and_not_read(
    api: Served, path: str, credential: str, limit: int, status: int, message: str, declared: bool
) -> None:
    headers = await _credential(api, credential)
    answer = await send_huge(api, path.format(worker=api.worker_id), headers, declared=declared)
    assert (answer.status, message in answer.body["error"]) == (status, True), answer.body
    if status == 413:
        assert str(limit) in answer.body["error"]
    assert "connection: close" in answer.headers
    # The server read at most the limit and the drain (and the sockets hold a few MiB).
    assert answer.sent < limit + DRAIN_BYTES + 16 * 1024 * 1024 < TOTAL, answer.sent
    assert (await api.http.get("/healthz")).status_code == 200  # and it serves on


async def test_a_body_a_little_over_the_limit_gets_its_413_even_sent_whole_first(
    api: Served,
) -> None:
    # httpx writes the whole body before it reads: the drain lets it see the answer.
    for path, headers, limit in (
        ("/api/workers/register", await api.registration(), FLEET_LIMIT),
        ("/events", api.member, EVENTS_LIMIT),
    ):
        answer = await api.http.post(
            path,
            headers={**headers, "content-type": "application/json"},
            content=b" " * (limit + 1024 * 1024),
        )
        assert answer.status_code == 413, answer.text
        assert answer.json() == {"error": f"body is over the limit of {limit} bytes"}
    assert (
        await api.pool.fetchval("SELECT count(*) FROM fleet_workers WHERE org_id = $1", api.org)
        == 1
    )  # only the fixture's worker


async def test_a_body_read_to_its_end_keeps_the_connection(api: Served) -> None:
    # Only an answer that leaves a body unread closes: an ordinary call does not, refused or not.
    for body, status in (({"type": "tests/note.posted", "data": {}}, 202), ({"type": 1}, 422)):
        answer = await api.http.post("/events", headers=api.member, json=body)
        assert answer.status_code == status, answer.text
        assert answer.headers.get("connection") != "close"
