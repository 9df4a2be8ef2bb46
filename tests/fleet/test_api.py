"""The fleet's HTTP API as a worker and an operator meet it: every refused credential is a bare
401 whose reason is only in the log; a worker sees and touches only its own project and acts
only as itself; the legacy worker key works on the one endpoint it may, only when switched on."""

from __future__ import annotations

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

from api.fleet import FleetApi
from store import FleetStore, NewSession, SessionStore
from workers.fleet import RuntimeKeys
from workers.fleet.admin import create_registration_token

ADMIN = "admin-secret"
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
        """A registered worker of `project`: its id and runtime JWT."""
        response = await self.register(await self.token(project))
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
        admin_token=SecretStr(ADMIN),
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
    again = await api.http.post(f"/api/workers/{worker_id}/heartbeat", headers=headers, json={})
    assert again.status_code == 410
    assert again.json() == {"error": f"worker {worker_id} deregistered; register again"}


async def test_jwks_verifies_the_runtime_jwt_a_temporal_authorizer_would_get(api: Api) -> None:
    _, runtime = await api.worker("atlas")
    jwks = (await api.http.get("/.well-known/jwks.json")).json()
    kid = jwt.get_unverified_header(runtime)["kid"]
    [key] = [k for k in jwks["keys"] if k["kid"] == kid]
    public = jwt.PyJWK(key).key
    claims = jwt.decode(runtime, public, algorithms=["EdDSA"], audience="durable-workers")
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
        claims.model_dump(), forger._keys[0][1], algorithm="EdDSA", headers={"kid": kid}
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
    for expected, token in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, "durable.fleet.api"):
            response = await api.http.post(
                f"/api/workers/{worker_id}/heartbeat", headers=bearer(token), json={}
            )
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED), expected
        logged = reasons(caplog)
        if expected != "garbage":
            assert any(expected in r for r in logged), (expected, logged)
        assert registration not in caplog.text, "a registration token is logged by prefix only"
    no_header = await api.http.get("/api/workers")
    assert (no_header.status_code, no_header.json()) == (401, UNAUTHORIZED)


async def test_a_runtime_jwt_of_a_revoked_registration_is_refused(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    worker_id, runtime = await api.worker("atlas")
    assert await api.store.revoke(api.keys.verify(runtime).reg)
    with caplog.at_level(logging.WARNING, "durable.fleet.api"):
        refresh = await api.http.post(f"/api/workers/{worker_id}/refresh", headers=bearer(runtime))
    assert (refresh.status_code, refresh.json()) == (401, UNAUTHORIZED)
    assert any("registration was revoked or expired" in r for r in reasons(caplog))


async def test_register_refuses_anything_but_a_live_registration_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, runtime = await api.worker("atlas")
    revoked_id = (await create_registration_token(api.store, api.org, "atlas", "local-a")).id
    created = await create_registration_token(api.store, api.org, "atlas", "local-a")
    await api.store.revoke(created.id)
    expired = await create_registration_token(
        api.store, api.org, "atlas", "local-a", ttl=timedelta(seconds=-1)
    )
    for token in (runtime, created.token.plaintext, expired.token.plaintext, "rsp_live_nope"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "durable.fleet.api"):
            response = await api.register(token)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
        assert token not in caplog.text
    assert revoked_id
    # A worker that offers another provider than its pool's is told what to fix.
    docker = await api.token("atlas", "docker-b")
    mismatch = await api.register(docker)
    assert mismatch.status_code == 422
    assert mismatch.json() == {
        "error": "pool 'docker-b' is a docker pool; this worker offers local"
    }


async def test_a_valid_token_for_another_project_reaches_nothing_of_this_one(api: Api) -> None:
    atlas_worker, atlas_jwt = await api.worker("atlas")
    _, other_jwt = await api.worker("borealis")
    sessions = SessionStore(api.pool)
    session_id = f"session-{uuid.uuid4().hex[:8]}"
    await sessions.open(
        NewSession(session_id, "run", "local", "p", org_id=api.org, project="atlas")
    )
    pool = await api.store.pool_named(api.org, "local-a")
    await api.store.place_session(session_id, pool, "routed to pool local-a")

    other = bearer(other_jwt)
    assert (await api.http.get(f"/api/workers/{atlas_worker}", headers=other)).status_code == 404
    listed = (await api.http.get("/api/workers", headers=other)).json()["workers"]
    assert atlas_worker not in [w["id"] for w in listed]
    for path, body in (
        (f"/api/workers/{atlas_worker}/heartbeat", {}),
        (f"/api/workers/{atlas_worker}/refresh", {}),
        (f"/api/sessions/{session_id}/claim", {"attempt": 1}),
        (f"/api/sessions/{session_id}/progress", {"attempt": 1, "seq": 1, "line": "hi"}),
        (f"/api/sessions/{session_id}/output", {"attempt": 1, "transcript": []}),
    ):
        response = await api.http.post(path, headers=other, json=body)
        assert response.status_code == 404, path
    assert (await api.http.delete(f"/api/workers/{atlas_worker}", headers=other)).status_code == 404
    assert (await sessions.get(session_id)).progress == []  # type: ignore[union-attr]

    # The same project, but another worker: it may not act as this one.
    _, sibling = await api.worker("atlas")
    beat = await api.http.post(
        f"/api/workers/{atlas_worker}/heartbeat", headers=bearer(sibling), json={}
    )
    assert (beat.status_code, beat.json()) == (403, {"error": "a worker may act only as itself"})
    # Its own worker writes to it.
    claimed = await api.http.post(
        f"/api/sessions/{session_id}/claim", headers=bearer(atlas_jwt), json={"attempt": 1}
    )
    assert claimed.status_code == 200


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
        elsewhere = await http.get("/api/workers", headers=bearer(LEGACY))
        assert (elsewhere.status_code, elsewhere.json()) == (401, UNAUTHORIZED)
    record = await sessions.get(session_id)
    assert record is not None and [p.line for p in record.progress] == ["legacy worker says hi"]


async def test_pool_route_and_token_management_over_http(api: Api, pool: asyncpg.Pool) -> None:
    admin = {**bearer(ADMIN), "X-Durable-Org": api.org}
    off = FleetApi(api.store, SessionStore(pool), api.keys)  # no DURABLE_ADMIN_TOKEN
    transport = httpx.ASGITransport(app=Starlette(routes=off.routes()))
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet") as http:
        closed = await http.get("/api/execution/pools", headers=admin)
    assert closed.status_code == 503
    assert closed.json() == {"error": "fleet management over HTTP is off: set DURABLE_ADMIN_TOKEN"}
    assert (await api.http.get("/api/execution/pools", headers=bearer("nope"))).status_code == 401
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
