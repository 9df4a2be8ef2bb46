"""OIDC bearer tokens through the API: a local issuer (its keys made here, its JWKS served on
127.0.0.1) signs tokens; ones that fit pass as a principal of their org claim, others are 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client

from api.oidc import OidcConfig, OidcVerifier
from api.server import ApiServer
from tests.events.test_events import until_waiting
from workers.embedded import free_port

from .conftest import Api, serving
from .workflows import Decided

ISSUER = "https://sso.example.test"
AUDIENCE = "durable-api"


@dataclass
class Issuer:
    key: rsa.RSAPrivateKey
    kid: str
    url: str

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "ada@example.test",
            "org_id": "org-sso",
            "scope": "runs:start approve runs:read",
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = f"k-{uuid.uuid4().hex[:6]}"
    public = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]})

    server = ApiServer(Starlette(routes=[Route("/jwks", jwks)]), free_port())
    await server.start()
    try:
        yield Issuer(key, kid, f"{server.address}/jwks")
    finally:
        await server.stop()


@pytest.fixture
async def sso_api(
    dev_client: Client, pool: asyncpg.Pool, task_queue: str, issuer: Issuer
) -> AsyncIterator[Api]:
    verifier = OidcVerifier(OidcConfig(ISSUER, AUDIENCE, issuer.url))
    try:
        async with serving(dev_client, pool, task_queue, oidc=verifier) as served:
            yield served
    finally:
        await verifier.aclose()


async def test_a_token_from_the_issuer_acts_for_its_org_and_is_named_in_approvals(
    sso_api: Api, issuer: Issuer
) -> None:
    token = issuer.token()
    status, receipt = await sso_api.call(
        "POST", "/events", {"type": "tests/gate.requested", "data": {}}, token
    )
    assert status == 202, receipt
    [run_id] = receipt["started"]
    assert "@org-sso/" in run_id, "the event is the token's org's"
    await until_waiting(sso_api.client, run_id)
    data = {"workflow_id": run_id, "decision": "approve"}
    approval = {"type": "rensei/approval.resolved", "data": data}
    assert (await sso_api.call("POST", "/events", approval, token))[0] == 202
    out: Decided = await sso_api.client.get(run_id).result()
    assert (out.by, out.via) == ("oidc:ada@example.test", "api")


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"iss": "https://evil.example.test"}, "wrong issuer"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"org_id": None}, "missing claim 'org_id'"),
        ({"org_id": ""}, "missing claim 'org_id'"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": None}, "missing claim 'iat'"),
        ({"org_id": "local/a"}, "org claim is not an org id"),
        ({"org_id": "local "}, "org claim is not an org id"),
    ],
)
async def test_tokens_that_do_not_fit_are_refused(
    sso_api: Api, issuer: Issuer, claims: dict[str, Any], says: str
) -> None:
    before = await sso_api.events()
    token = issuer.token(**claims)
    status, answer = await sso_api.call(
        "POST", "/events", {"type": "tests/gate.requested", "data": {}}, token
    )
    assert status == 401 and says in answer["error"], answer
    assert token not in answer["error"]
    assert await sso_api.events() == before


async def test_an_hmac_token_signed_with_the_public_key_is_refused(
    sso_api: Api, issuer: Issuer
) -> None:
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "org_id": "org-sso",
        "scope": "admin",
        "iat": now,
        "exp": now + 300,
    }
    forged = _hs256(claims, public_pem, issuer.kid)
    status, answer = await sso_api.call("GET", "/events/x", key=forged)
    assert status == 401 and "algorithm 'HS256' is not allowed" in answer["error"]
    unsigned = jwt.encode(claims, "", algorithm="none")
    status, answer = await sso_api.call("GET", "/events/x", key=unsigned)
    assert status == 401 and "algorithm 'none' is not allowed" in answer["error"]


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token keyed by `secret`, built by hand (PyJWT refuses a PEM as an HMAC key)."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"
