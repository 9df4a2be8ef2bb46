"""Bad input from the attack review, each sent for real: a 400 or 422 whose message says what is
wrong, and nothing stored (events, workers, progress, pools, routes, tokens counted before and
after). None of them may be a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from api.webhooks import sign
from store import FleetError, FleetStore
from tests.events.test_linear_webhooks import issue_updated

from .served import LINEAR_SECRET, Served, served

DEEP = b"[" * 350 + b"]" * 350
HUGE_INT = "9" * 5000
TOO_DEEP = "nests arrays and objects deeper than 64 levels"
INT32 = 2**31


@pytest.fixture
async def api(dev_client: Client, pool: asyncpg.Pool, task_queue: str) -> AsyncIterator[Served]:
    async with served(dev_client, pool, task_queue) as running:
        yield running


@dataclass
class Case:
    method: str
    path: str
    who: str  # member, admin, worker, registration, linear (signed), none
    body: bytes | dict[str, Any] | None
    status: int
    message: str


def note(**fields: Any) -> dict[str, Any]:
    return {"type": "tests/note.posted", "data": {"topic": "t"}, **fields}


def raw(text: str) -> bytes:
    return text.encode()


def linear(timestamp: str) -> bytes:
    """A Linear payload whose webhookTimestamp is `timestamp`, as JSON text."""
    document = json.dumps(issue_updated("issue-1", sent=123))
    return document.replace('"webhookTimestamp": 123', f'"webhookTimestamp": {timestamp}').encode()


NUL = "\u0000"
CASES = [
    # --- NUL characters: in an event's id, data, keys and tenancy; in paths and queries
    Case("POST", "/events", "member", note(id=f"a{NUL}b"), 422, "id contains a NUL character"),
    Case("POST", "/events", "member", note(data={"topic": f"x{NUL}"}), 422, "data.topic contains"),
    Case("POST", "/events", "member", note(data={f"k{NUL}": 1}), 422, "a key in data contains"),
    Case(
        "POST",
        "/events",
        "member",
        note(tenancy={"project_id": NUL}),
        422,
        "tenancy.project_id contains a NUL",
    ),
    Case("GET", "/events/a%00b", "member", None, 400, "the path contains a NUL character"),
    Case("GET", "/events/a?org=%00", "member", None, 400, "the query string contains a NUL"),
    Case("GET", "/runs/a%00/steps", "member", None, 400, "the path contains a NUL character"),
    Case("GET", "/sessions/a%00", "member", None, 400, "the path contains a NUL character"),
    Case("GET", "/api/workers/w%00", "worker", None, 400, "the path contains a NUL character"),
    Case(
        "POST",
        "/api/workers/register",
        "registration",
        {"maxConcurrency": 1, "hostname": f"h{NUL}"},
        422,
        "hostname contains a NUL character",
    ),
    Case(
        "POST",
        "/api/workers/register",
        "registration",
        {"maxConcurrency": 1, "capabilities": [f"local{NUL}"]},
        422,
        "capabilities[0] contains a NUL",
    ),
    Case(
        "POST",
        "/api/workers/{worker}/heartbeat",
        "worker",
        {"sessions": [f"s{NUL}"]},
        422,
        "sessions[0] contains a NUL",
    ),
    Case(
        "POST",
        "/api/sessions/any/progress",
        "worker",
        {"seq": 1, "line": f"step{NUL}", "claim": 1},
        422,
        "line contains a NUL character (\\u0000), which cannot be stored",
    ),
    Case(
        "POST",
        "/api/sessions/any/output",
        "worker",
        {"transcript": [{"text": f"a{NUL}"}], "claim": 1},
        422,
        "transcript[0].text contains a NUL",
    ),
    Case(
        "POST",
        "/api/sessions/any/output",
        "worker",
        {"transcript": [], "result": {"answer": NUL}, "claim": 1},
        422,
        "result.answer contains a NUL",
    ),
    # --- nesting deeper than 64 levels, and numbers that are not JSON's
    Case(
        "POST",
        "/events",
        "member",
        raw(f'{{"type": "tests/note.posted", "data": {DEEP.decode()}}}'),
        400,
        TOO_DEEP,
    ),
    Case("POST", "/codec/encode", "none", raw(f'{{"payloads": {DEEP.decode()}}}'), 400, TOO_DEEP),
    Case("POST", "/codec/decode", "none", raw(f'{{"payloads": {DEEP.decode()}}}'), 400, TOO_DEEP),
    Case(
        "POST",
        "/codec/decode",
        "none",
        raw(f'{{"payloads": [], "n": {HUGE_INT}}}'),
        400,
        "integer of 5000 digits",
    ),
    Case("POST", "/api/workers/register", "registration", DEEP, 400, TOO_DEEP),
    Case("POST", "/api/workers/register", "registration", b"[" * 200_000, 400, "not valid JSON"),
    Case(
        "POST",
        "/events",
        "member",
        raw('{"type": "tests/note.posted", "data": {"topic": NaN}}'),
        400,
        "NaN is not a JSON number",
    ),
    Case(
        "POST",
        "/events",
        "member",
        raw('{"type": "tests/note.posted", "data": {"n": 1e400}}'),
        400,
        "the number 1e400 is out of range",
    ),
    Case(
        "POST",
        "/events",
        "member",
        raw(f'{{"type": "tests/note.posted", "id": {HUGE_INT}}}'),
        400,
        "integer of 5000 digits",
    ),
    # --- the Linear webhook's timestamp (signed: it is checked after the signature)
    Case("POST", "/webhooks/linear", "linear", linear("NaN"), 400, "NaN is not a JSON number"),
    Case("POST", "/webhooks/linear", "linear", linear("Infinity"), 400, "Infinity is not a JSON"),
    Case("POST", "/webhooks/linear", "linear", linear("-Infinity"), 400, "-Infinity is not a"),
    Case("POST", "/webhooks/linear", "linear", linear(HUGE_INT), 400, "integer of 5000 digits"),
    Case(
        "POST",
        "/webhooks/linear",
        "linear",
        linear("1e300"),
        400,
        "webhookTimestamp must be Unix milliseconds, from 0 to 9007199254740992",
    ),
    Case("POST", "/webhooks/linear", "linear", linear("-5"), 400, "webhookTimestamp must be Unix"),
    Case("POST", "/webhooks/linear", "none", linear("NaN"), 401, "no Linear-Signature header"),
    # --- integers past PostgreSQL's integer, and negative counts
    Case(
        "POST",
        "/api/workers/{worker}/heartbeat",
        "worker",
        {"active": INT32},
        422,
        "active: Input should be less than or equal to 2147483647",
    ),
    Case(
        "POST",
        "/api/workers/{worker}/heartbeat",
        "worker",
        {"active": -1},
        422,
        "active: Input should be greater than or equal to 0",
    ),
    Case(
        "POST",
        "/api/sessions/any/progress",
        "worker",
        {"seq": INT32, "line": "x", "claim": 1},
        422,
        "seq: Input should be less than or equal to 2147483647",
    ),
    Case(
        "POST",
        "/api/sessions/any/progress",
        "worker",
        {"seq": 0, "line": "x", "claim": 1},
        422,
        "seq: Input should be greater than or equal to 1",
    ),
    Case(
        "POST",
        "/api/sessions/any/progress",
        "worker",
        {"seq": 1, "line": "x", "claim": -1},
        422,
        "claim: Input should be greater than or equal to 0",
    ),
    Case(
        "POST",
        "/api/sessions/any/output",
        "worker",
        {"transcript": [], "claim": INT32},
        422,
        "claim: Input should be less than or equal to 2147483647",
    ),
    Case(
        "POST",
        "/api/workers/register",
        "registration",
        {"maxConcurrency": INT32},
        422,
        "maxConcurrency: Input should be less than or equal to 1000",
    ),
    # --- pools, routes and tokens of the admin routes
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": "p1", "provider": "local", "capacity": {"max_sessions": -5}},
        422,
        "capacity.max_sessions: Input should be greater than or equal to 1",
    ),
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": "p1", "provider": "local", "capacity": {"max_sessions": INT32}},
        422,
        "capacity.max_sessions: Input should be less than or equal to 2147483647",
    ),
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": "p1", "provider": "local", "capacity": {"max_sessions": "5"}},
        422,
        "capacity.max_sessions: Input should be a valid integer",
    ),
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": "p1", "provider": "local", "capacity": {"maxSessions": 5}},
        422,
        "capacity.maxSessions: Extra inputs are not permitted",
    ),
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": " ", "provider": "local"},
        422,
        "name: String should match pattern",
    ),
    Case(
        "POST",
        "/api/execution/pools",
        "admin",
        {"name": "a b", "provider": "local"},
        422,
        "name: String should match pattern",
    ),
    Case(
        "PUT",
        "/api/projects/%20/execution-route",
        "admin",
        {"preferred": ["local-a"]},
        422,
        "project id ' ' is not one: 1-200 characters of A-Z a-z 0-9 . _ : -",
    ),
    Case(
        "POST",
        "/api/projects/%20%20/tokens",
        "admin",
        {"pool": "local-a"},
        422,
        "project id '  ' is not one",
    ),
    Case(
        "POST",
        "/api/projects/a$b/tokens",
        "admin",
        {"pool": "local-a"},
        422,
        "project id 'a$b' is not one",
    ),
    Case("GET", "/api/projects/a%20b/fleet", "admin", None, 422, "project id 'a b' is not one"),
    Case(
        "GET",
        "/api/projects/%09/execution-route",
        "admin",
        None,
        422,
        "project id '\\t' is not one",
    ),
    Case(
        "POST",
        "/api/projects/atlas/tokens",
        "admin",
        raw('{"pool": "local-a", "expiresInDays": NaN}'),
        400,
        "NaN is not a JSON number",
    ),
]

COUNTS = {
    "events": "SELECT count(*) FROM events",
    "workers": "SELECT count(*) FROM fleet_workers WHERE org_id = $1",
    "progress": "SELECT count(*) FROM agent_session_progress WHERE org_id = $1",
    "pools": "SELECT count(*) FROM execution_pools WHERE org_id = $1",
    "routes": "SELECT count(*) FROM execution_routes WHERE org_id = $1",
    "tokens": "SELECT count(*) FROM registration_tokens WHERE org_id = $1",
}


async def stored(api: Served) -> dict[str, int]:
    counts = {}
    for name, query in COUNTS.items():
        args = [] if "$1" not in query else [api.org]
        counts[name] = int(await api.pool.fetchval(query, *args))
    return counts


async def headers_for(api: Served, who: str, body: bytes) -> dict[str, str]:
    if who == "registration":
        return await api.registration()
    if who == "linear":
        return {"Linear-Signature": sign(body, LINEAR_SECRET)}
    return {"none": {}, "member": api.member, "admin": api.admin, "worker": api.worker}[who]


async def test_each_bad_input_is_a_4xx_that_says_what_is_wrong_and_stores_nothing(
    api: Served,
) -> None:
    before = await stored(api)
    wrong = []
    for case in CASES:
        body = case.body if case.body is None or isinstance(case.body, bytes) else None
        if isinstance(case.body, dict):
            body = json.dumps(case.body).encode()
        headers = await headers_for(api, case.who, body or b"")
        if case.who == "registration":
            before["tokens"] += 1  # the case's own registration token, made above
        answer = await api.http.request(
            case.method,
            case.path.format(worker=api.worker_id),
            content=body,
            headers={"content-type": "application/json", **headers},
        )
        error = answer.json().get("error", "") if answer.content else ""
        if answer.status_code != case.status or case.message not in error:
            wrong.append(
                (case.method, case.path, case.status, case.message, answer.status_code, error[:300])
            )
    assert wrong == [], "\n".join(map(str, wrong))
    assert await stored(api) == before


async def test_the_store_checks_what_the_cli_passes_too(api: Served) -> None:
    fleet = FleetStore(api.pool)
    with pytest.raises(
        FleetError, match="max_sessions must be a whole number from 1 to 2147483647"
    ):
        await fleet.create_pool(api.org, "p2", "local", capacity={"max_sessions": -5})
    with pytest.raises(FleetError, match=r"project id ' ' is not one"):
        await fleet.set_route(api.org, " ", preferred=["local-a"])
    with pytest.raises(FleetError, match=r"project id 'a\\x00' is not one"):
        await fleet.add_registration_token(api.org, "a\x00", "hash", "rsp", ttl=timedelta(days=1))
