"""The fleet's HTTP API as a worker and an operator meet it: every refused credential is a bare
401 whose reason is only in the log; a worker sees and touches only its own project and acts
only as itself; the legacy worker key works on the one endpoint it may, only when switched on."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from api.auth import Authenticator
from api.fleet import FleetApi
from store import FleetStore, KeyStore, NewSession, SessionStore
from tests.keys import make_key
from workers.fleet import RuntimeKeys
from workers.fleet.admin import create_registration_token

LEGACY = "legacy-shared-key"
UNAUTHORIZED = {"error": "unauthorized"}


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: RuntimeKeys
    store: FleetStore
    pool: asyncpg.Pool
    org: str

    async def token(self, project: str, pool: str = "local-a") -> str:
        return (
            await create_registration_token(self.store, self.org, project, pool)
        ).token.plaintext

    async def register(self, token: str, **body: Any) -> httpx.Response:
        return await self.http.post(
            "/api/workers/register",
            headers=bearer(token),
            json={"maxConcurrency": 2, "capabilities": ["local"], **body},
        )

    async def worker(self, project: str) -> tuple[str, str]:
        """A registered worker of `project` on `local-a`: its id and runtime JWT."""
        return await self.worker_on(project, "local-a")

    async def worker_on(self, project: str, pool: str) -> tuple[str, str]:
        provider = (await self.store.pool_named(self.org, pool)).provider
        response = await self.register(await self.token(project, pool), capabilities=[provider])
        assert response.status_code == 201, response.text
        body = response.json()
        return body["workerId"], body["runtimeJwt"]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def app_with(pool: asyncpg.Pool, keys: RuntimeKeys, *, legacy: bool = False) -> Starlette:
    fleet = FleetApi(
        FleetStore(pool),
        SessionStore(pool),
        keys,
        admins=Authenticator(KeyStore(pool)),
        legacy_worker_key=SecretStr(LEGACY) if legacy else None,
    )
    return Starlette(routes=fleet.routes())


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[Api]:
    keys = RuntimeKeys.generate(issuer="durable", audience="durable-workers")
    org = f"org-{uuid.uuid4().hex[:8]}"
    store = FleetStore(pool)
    await store.create_pool(org, "local-a", "local")
    await store.create_pool(org, "docker-b", "docker")
    transport = httpx.ASGITransport(app=app_with(pool, keys))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as http:
        yield Api(http, keys, store, pool, org)


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [str(getattr(r, "reason", "")) for r in caplog.records if r.name == "durable.fleet.api"]


async def test_register_heartbeat_refresh_list_and_deregister(api: Api) -> None:
    token = await api.token("atlas")
    response = await api.register(token, version="1.2.3", hostname="gpu-7")
    assert response.status_code == 201
    body = response.json()
    claims = api.keys.verify(body["runtimeJwt"])
    assert (claims.proj, claims.org, claims.sub, claims.scope) == (
        "atlas",
        api.org,
        body["workerId"],
        "worker",
    )
    assert body["pool"]["name"] == "local-a" and body["taskQueue"].endswith("/atlas")
    worker_id, runtime = body["workerId"], body["runtimeJwt"]
    headers = bearer(runtime)

    beat = await api.http.post(f"/api/workers/{worker_id}/heartbeat", headers=headers, json={})
    assert beat.status_code == 200
    listed = (await api.http.get("/api/workers", headers=headers)).json()["workers"]
    assert [(w["id"], w["pool"], w["status"], w["hostname"]) for w in listed] == [
        (worker_id, "local-a", "online", "gpu-7")
    ]
    refreshed = await api.http.post(f"/api/workers/{worker_id}/refresh", headers=headers)
    assert refreshed.status_code == 200
    assert api.keys.verify(refreshed.json()["runtimeJwt"]).sub == worker_id

    assert (await api.http.delete(f"/api/workers/{worker_id}", headers=headers)).status_code == 204
    # A deregistered worker's JWT is refused everywhere, before it expires.
    for method, path in (
        ("POST", f"/api/workers/{worker_id}/heartbeat"),
        ("GET", "/api/workers"),
        ("POST", f"/api/workers/{worker_id}/refresh"),
    ):
        again = await api.http.request(method, path, headers=headers, json={})
        assert (again.status_code, again.json()) == (401, UNAUTHORIZED), path


async def test_jwks_verifies_the_runtime_jwt_a_temporal_authorizer_would_get(api: Api) -> None:
    _, runtime = await api.worker("atlas")
    jwks = (await api.http.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(runtime)["kid"]
    [key] = [k for k in jwks["keys"] if k["kid"] == kid]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(runtime, public, algorithms=["ES256"], audience="durable-workers")
    assert claims["proj"] == "atlas" and claims["iss"] == "durable"


async def test_every_bad_runtime_token_is_a_bare_401_with_the_reason_only_in_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    worker_id, good = await api.worker("atlas")
    claims = api.keys.verify(good)
    past = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = api.keys.mint(
        project="atlas", org=api.org, worker=worker_id, registration=claims.reg, now=past
    )
    future = datetime.now(UTC) + timedelta(hours=1)
    not_yet, _ = api.keys.mint(
        project="atlas", org=api.org, worker=worker_id, registration=claims.reg, now=future
    )
    other_audience = RuntimeKeys(api.keys._keys, issuer="durable", audience="someone-else")
    wrong_audience, _ = other_audience.mint(
        project="atlas", org=api.org, worker=worker_id, registration=claims.reg
    )
    forger = RuntimeKeys.generate(issuer="durable", audience="durable-workers")
    kid = jwt.get_unverified_header(good)["kid"]
    forged = jwt.encode(
        claims.model_dump(), forger._keys[0][1], algorithm="ES256", headers={"kid": kid}
    )
    unsigned = jwt.encode(claims.model_dump(), None, algorithm="none")  # type: ignore[arg-type]
    unknown_kid, _ = forger.mint(
        project="atlas", org=api.org, worker=worker_id, registration=claims.reg
    )
    registration = await api.token("atlas")
    cases = {
        "expired": expired,
        "not yet valid": not_yet,
        "wrong audience": wrong_audience,
        "bad signature": forged,
        "algorithm 'none' is not accepted": unsigned,
        "unknown key id": unknown_kid,
        "used outside /api/workers/register": registration,
        "garbage": "not-a-token",
    }
    cases["malformed token"] = cases.pop("garbage")
    calls = (  # every kind of call that takes a runtime JWT
        ("POST", f"/api/workers/{worker_id}/heartbeat"),
        ("POST", f"/api/workers/{worker_id}/refresh"),
        ("GET", "/api/workers"),
        ("GET", f"/api/workers/{worker_id}"),
        ("DELETE", f"/api/workers/{worker_id}"),
        ("POST", "/api/sessions/any/claim"),
        ("POST", "/api/sessions/any/progress"),
        ("POST", "/api/sessions/any/output"),
    )
    for expected, token in cases.items():
        for method, path in calls:
            caplog.clear()
            with caplog.at_level(logging.WARNING, "durable.fleet.api"):
                response = await api.http.request(method, path, headers=bearer(token), json={})
            assert (response.status_code, response.json()) == (401, UNAUTHORIZED), (expected, path)
            logged = reasons(caplog)
            assert any(expected in r for r in logged), (expected, path, logged)
            assert registration not in caplog.text, "a registration token is logged by prefix"
    # and the worker is still there, untouched by any of it
    assert (await api.store.worker(worker_id, org_id=api.org)).status == "online"  # type: ignore[union-attr]
    no_header = await api.http.get("/api/workers")
    assert (no_header.status_code, no_header.json()) == (401, UNAUTHORIZED)


async def test_a_runtime_jwt_of_a_revoked_registration_is_refused(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    worker_id, runtime = await api.worker("atlas")
    assert await api.store.revoke(api.keys.verify(runtime).reg, org_id=api.org)
    with caplog.at_level(logging.WARNING, "durable.fleet.api"):
        refresh = await api.http.post(f"/api/workers/{worker_id}/refresh", headers=bearer(runtime))
    assert (refresh.status_code, refresh.json()) == (401, UNAUTHORIZED)
    assert any("its registration was revoked" in r for r in reasons(caplog))


async def test_register_refuses_anything_but_a_live_registration_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, runtime = await api.worker("atlas")
    created = await create_registration_token(api.store, api.org, "atlas", "local-a")
    await api.store.revoke(created.id, org_id=api.org)
    expired = await create_registration_token(
        api.store, api.org, "atlas", "local-a", ttl=timedelta(seconds=-1)
    )
    for token in (runtime, created.token.plaintext, expired.token.plaintext, "rsp_live_nope"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "durable.fleet.api"):
            response = await api.register(token)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
        assert token not in caplog.text
    # A worker that offers another provider than its pool's is told what to fix.
    docker = await api.token("atlas", "docker-b")
    mismatch = await api.register(docker)
    assert mismatch.status_code == 422
    assert mismatch.json() == {
        "error": "pool 'docker-b' is a docker pool; this worker offers local"
    }


async def placed_session(api: Api, project: str, pool: str = "local-a") -> str:
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    await SessionStore(api.pool).open(
        NewSession(session_id, "run", "local", "p", org_id=api.org, project=project)
    )
    chosen = await api.store.pool_named(api.org, pool)
    await api.store.place(api.org, project, session_id, [chosen], lambda caps: caps[0], "")
    return session_id


async def test_a_valid_token_for_another_project_reaches_nothing_of_this_one(api: Api) -> None:
    atlas_worker, _ = await api.worker("atlas")
    _, other_jwt = await api.worker("borealis")
    session_id = await placed_session(api, "atlas")
    other = bearer(other_jwt)
    assert (await api.http.get(f"/api/workers/{atlas_worker}", headers=other)).status_code == 404
    listed = (await api.http.get("/api/workers", headers=other)).json()["workers"]
    assert atlas_worker not in [w["id"] for w in listed]
    for path, body in (
        (f"/api/workers/{atlas_worker}/heartbeat", {}),
        (f"/api/workers/{atlas_worker}/refresh", {}),
        (f"/api/sessions/{session_id}/claim", {}),
        (f"/api/sessions/{session_id}/progress", {"seq": 1, "line": "hi"}),
        (f"/api/sessions/{session_id}/output", {"transcript": []}),
    ):
        response = await api.http.post(path, headers=other, json=body)
        assert response.status_code == 404, path
    assert (await api.http.delete(f"/api/workers/{atlas_worker}", headers=other)).status_code == 404
    assert (await SessionStore(api.pool).get(session_id, org_id=api.org)).progress == []  # type: ignore[union-attr]

    # The same project name in another org is another project.
    elsewhere = Api(api.http, api.keys, api.store, api.pool, f"org-{uuid.uuid4().hex[:8]}")
    await api.store.create_pool(elsewhere.org, "local-a", "local")
    _, stranger = await elsewhere.worker("atlas")
    claim = await api.http.post(f"/api/sessions/{session_id}/claim", headers=bearer(stranger))
    assert claim.status_code == 404
    got = await api.http.get(f"/api/workers/{atlas_worker}", headers=bearer(stranger))
    assert got.status_code == 404


async def test_only_the_worker_holding_a_claim_writes_to_its_session(api: Api) -> None:
    first, first_jwt = await api.worker("atlas")
    _, sibling_jwt = await api.worker("atlas")
    _, docker_jwt = await api.worker_on("atlas", "docker-b")
    session_id = await placed_session(api, "atlas")
    path = f"/api/sessions/{session_id}"

    # A worker of another pool may not claim it.
    other_pool = await api.http.post(f"{path}/claim", headers=bearer(docker_jwt))
    assert other_pool.status_code == 403
    # The first claim is number 1; its lines are kept under it.
    claimed = await api.http.post(f"{path}/claim", headers=bearer(first_jwt))
    assert (claimed.status_code, claimed.json()["attempt"]) == (200, 1)
    line = {"seq": 1, "line": "working", "claim": 1, "attempt": 99}  # it cannot pick the attempt
    wrote = await api.http.post(f"{path}/progress", headers=bearer(first_jwt), json=line)
    assert wrote.status_code == 200
    # Another worker of the same project and pool can neither take it over nor write to it.
    for what, body in (
        ("claim", {}),
        ("progress", line),
        ("output", {"transcript": [], "claim": 1}),
    ):
        response = await api.http.post(f"{path}/{what}", headers=bearer(sibling_jwt), json=body)
        assert response.status_code == 409, what
    # The same worker claims it again (a retried attempt): the earlier attempt's writes are
    # refused from then on, the new one's are kept under claim 2.
    again = await api.http.post(f"{path}/claim", headers=bearer(first_jwt))
    assert again.json()["attempt"] == 2
    stale = await api.http.post(f"{path}/progress", headers=bearer(first_jwt), json=line)
    assert (stale.status_code, stale.json()) == (
        409,
        {"error": f"claim 1 of agent session {session_id!r} is not its current claim"},
    )
    fresh = {"seq": 1, "line": "working again", "claim": 2}
    assert (
        await api.http.post(f"{path}/progress", headers=bearer(first_jwt), json=fresh)
    ).is_success
    # Its own worker writes its output; once the session has finished, nobody writes.
    output = {"transcript": [{"stream": "stdout", "text": "x", "at": 0}], "result": {"ok": 1}}
    kept = await api.http.post(
        f"{path}/output", headers=bearer(first_jwt), json={**output, "claim": 2}
    )
    assert kept.status_code == 200
    await SessionStore(api.pool).finish(
        NewSession(session_id, "run", "local", "p", org_id=api.org, project="atlas"),
        "completed",
        None,
    )
    late = await api.http.post(
        f"{path}/output",
        headers=bearer(first_jwt),
        json={"transcript": [], "result": "late", "claim": 2},
    )
    assert late.status_code == 409
    assert late.json() == {
        "error": f"agent session {session_id!r} is not running on this worker (finished, or "
        "claimed by another)"
    }
    record = await SessionStore(api.pool).get(session_id, org_id=api.org)
    assert record is not None and record.result == {"ok": 1}
    assert [(p.attempt, p.line) for p in record.progress] == [(1, "working"), (2, "working again")]
    assert record.worker_id == first


async def test_a_silent_worker_is_offline_after_the_grace_period_and_back_on_its_heartbeat(
    pool: asyncpg.Pool, api: Api
) -> None:
    short = FleetApi(api.store, SessionStore(pool), api.keys, heartbeat_grace=timedelta(seconds=1))
    transport = httpx.ASGITransport(app=Starlette(routes=short.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as http:
        worker_id, runtime = await api.worker("atlas")
        listed = (await http.get("/api/workers", headers=bearer(runtime))).json()["workers"]
        assert [w["status"] for w in listed] == ["online"]
        await asyncio.sleep(1.5)
        listed = (await http.get("/api/workers", headers=bearer(runtime))).json()["workers"]
        assert [w["status"] for w in listed] == ["offline"]
        beat = await http.post(f"/api/workers/{worker_id}/heartbeat", headers=bearer(runtime))
        assert beat.status_code == 200
        described = (await http.get(f"/api/workers/{worker_id}", headers=bearer(runtime))).json()
        assert described["status"] == "online"


async def test_the_legacy_worker_key_is_off_by_default_and_only_for_session_progress(
    pool: asyncpg.Pool, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = SessionStore(pool)
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    await sessions.open(NewSession(session_id, "run", "local", "p", org_id=api.org))
    line = {"attempt": 1, "seq": 1, "line": "legacy worker says hi"}
    off = await api.http.post(
        f"/api/sessions/{session_id}/progress", headers=bearer(LEGACY), json=line
    )
    assert (off.status_code, off.json()) == (401, UNAUTHORIZED)

    transport = httpx.ASGITransport(app=app_with(pool, api.keys, legacy=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as http:
        with caplog.at_level(logging.WARNING, "durable.fleet.api"):
            on = await http.post(
                f"/api/sessions/{session_id}/progress", headers=bearer(LEGACY), json=line
            )
        assert on.status_code == 200
        assert "deprecated: the legacy shared worker key" in caplog.text
        for method, path in (
            ("GET", "/api/workers"),
            ("POST", f"/api/sessions/{session_id}/claim"),
            ("POST", f"/api/sessions/{session_id}/output"),
            ("POST", "/api/workers/register"),
        ):
            elsewhere = await http.request(method, path, headers=bearer(LEGACY), json={})
            assert (elsewhere.status_code, elsewhere.json()) == (401, UNAUTHORIZED), path
    record = await sessions.get(session_id, org_id=api.org)
    assert record is not None and [p.line for p in record.progress] == ["legacy worker says hi"]


async def test_pool_route_and_token_management_over_http(api: Api, pool: asyncpg.Pool) -> None:
    admin = bearer(await make_key(pool, api.org, "admin", name="fleet-admin"))
    member = bearer(await make_key(pool, api.org, name="member"))
    off = FleetApi(api.store, SessionStore(pool), api.keys)  # served outside the API's app
    transport = httpx.ASGITransport(app=Starlette(routes=off.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as http:
        closed = await http.get("/api/execution/pools", headers=admin)
    assert closed.status_code == 503
    assert (await api.http.get("/api/execution/pools", headers=bearer("nope"))).status_code == 401
    refused = await api.http.get("/api/execution/pools", headers=member)
    assert refused.status_code == 403 and "lacks the scope 'admin'" in refused.json()["error"]
    # The org is the key's: a header naming another org changes nothing.
    other = await api.http.get(
        "/api/execution/pools", headers={**admin, "X-Durable-Org": "org-victim"}
    )
    assert {p["name"] for p in other.json()["pools"]} == {"local-a", "docker-b"}
    created = await api.http.post(
        "/api/execution/pools",
        headers=admin,
        json={"name": "k8s-c", "provider": "kubernetes", "capacity": {"max_sessions": 3}},
    )
    assert created.status_code == 201 and created.json()["provider"] == "kubernetes"
    bad = await api.http.post(
        "/api/execution/pools", headers=admin, json={"name": "x", "provider": "lambda"}
    )
    assert bad.status_code == 422 and "provider must be one of" in bad.json()["error"]

    route = await api.http.put(
        "/api/projects/atlas/execution-route",
        headers=admin,
        json={"preferred": ["local-a"], "allowed": ["k8s-c"], "forbidden": ["docker-b"]},
    )
    assert route.json() == {
        "project": "atlas",
        "preferred": ["local-a"],
        "allowed": ["k8s-c"],
        "forbidden": ["docker-b"],
        "fallback": None,
        "legacy": False,
    }
    clash = await api.http.put(
        "/api/projects/atlas/execution-route",
        headers=admin,
        json={"preferred": ["local-a"], "forbidden": ["local-a"]},
    )
    assert clash.json() == {"error": "pools cannot be both forbidden and used: local-a"}
    unknown = await api.http.put(
        "/api/projects/atlas/execution-route", headers=admin, json={"preferred": ["nowhere"]}
    )
    assert unknown.status_code == 422 and "has no pool 'nowhere'" in unknown.json()["error"]

    token = await api.http.post(
        "/api/projects/atlas/tokens", headers=admin, json={"pool": "local-a", "name": "gpu-7"}
    )
    assert token.status_code == 201 and token.json()["token"].startswith("rsp_live_")
    forbidden = await api.http.post(
        "/api/projects/atlas/tokens", headers=admin, json={"pool": "docker-b"}
    )
    assert forbidden.json() == {"error": "pool 'docker-b' is forbidden by project 'atlas''s route"}
    assert (await api.register(token.json()["token"])).status_code == 201
    status = (await api.http.get("/api/projects/atlas/fleet", headers=admin)).json()
    assert [(p["name"], p["workers_online"], p["slots"]) for p in status["pools"]] == [
        ("k8s-c", 0, 0),
        ("local-a", 1, 2),
    ]


async def test_register_refuses_a_huge_or_deeply_nested_body_without_holding_it(
    api: Api,
) -> None:
    from api.fleet import MAX_BODY_BYTES

    chunk = b" " * 65536
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 50 * MAX_BODY_BYTES:
            sent += len(chunk)
            yield chunk

    huge = await api.http.post(
        "/api/workers/register", headers=bearer("rsp_live_nope"), content=endless()
    )
    assert huge.status_code == 413 and "over the limit" in huge.json()["error"]
    assert sent <= MAX_BODY_BYTES + 2 * len(chunk), "refused as soon as the limit was passed"
    token = await api.token("atlas")
    nested = await api.http.post(
        "/api/workers/register", headers=bearer(token), content=b"[" * 200_000
    )
    assert nested.status_code == 400 and "not valid JSON" in nested.json()["error"]


async def test_a_validly_signed_100_year_token_is_refused(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    worker_id, good = await api.worker("atlas")
    claims = api.keys.verify(good).model_dump()
    kid, key = api.keys._keys[0]  # the API's real signing key
    century = jwt.encode(
        {**claims, "exp": claims["iat"] + 100 * 365 * 24 * 3600},
        key,
        algorithm="ES256",
        headers={"kid": kid},
    )
    for method, path in (
        ("POST", f"/api/workers/{worker_id}/heartbeat"),
        ("POST", f"/api/workers/{worker_id}/refresh"),
        ("POST", "/api/sessions/any/claim"),
    ):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "durable.fleet.api"):
            response = await api.http.request(method, path, headers=bearer(century), json={})
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED), path
        assert any("exceeds the maximum of 960 s" in r for r in reasons(caplog)), path
    beat = await api.http.post(f"/api/workers/{worker_id}/heartbeat", headers=bearer(good))
    assert beat.status_code == 200, "the same worker's real token still works"


async def test_a_token_claiming_another_org_or_project_than_its_worker_s_is_refused(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed with the real key for worker W of org A, project atlas, but claiming org B (or
    project borealis): refused on worker and session routes, the reason logged."""
    worker_id, good = await api.worker("atlas")
    claims = api.keys.verify(good)
    other_org = f"org-{uuid.uuid4().hex[:8]}"
    await api.store.create_pool(other_org, "local-a", "local")
    elsewhere = Api(api.http, api.keys, api.store, api.pool, other_org)
    sessions = {
        (other_org, "atlas"): await placed_session(elsewhere, "atlas"),
        (api.org, "borealis"): await placed_session(api, "borealis"),
    }
    for (org, project), session_id in sessions.items():
        lying, _ = api.keys.mint(
            project=project, org=org, worker=worker_id, registration=claims.reg
        )
        for method, path, body in (
            ("POST", f"/api/workers/{worker_id}/heartbeat", {}),
            ("GET", "/api/workers", None),
            ("POST", f"/api/sessions/{session_id}/claim", {}),
            ("POST", f"/api/sessions/{session_id}/progress", {"seq": 1, "line": "x", "claim": 1}),
            ("POST", f"/api/sessions/{session_id}/output", {"transcript": [], "claim": 1}),
        ):
            caplog.clear()
            with caplog.at_level(logging.WARNING, "durable.fleet.api"):
                response = await api.http.request(method, path, headers=bearer(lying), json=body)
            assert (response.status_code, response.json()) == (401, UNAUTHORIZED), (org, path)
            expected = f"runtime JWT of worker {worker_id} claims org {org!r}, project {project!r}"
            assert any(r.startswith(expected) for r in reasons(caplog)), (org, path)
        record = await SessionStore(api.pool).get(session_id, org_id=org)
        assert record is not None and record.worker_id == "" and record.progress == []
