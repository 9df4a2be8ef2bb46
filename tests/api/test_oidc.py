"""OidcVerifier against a real local issuer: RSA keys made here, their JWKS served over HTTP on
127.0.0.1 (and counted), tokens signed with PyJWT or, for the forgeries PyJWT refuses to make,
by hand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.oidc import (
    InvalidToken,
    IssuerUnavailable,
    OidcConfig,
    OidcVerifier,
    config_from_env,
)
from api.server import ApiServer
from workers.embedded import free_port

ISSUER = "https://sso.example.test"
AUDIENCE = "durable-api"


@dataclass
class Key:
    private: rsa.RSAPrivateKey
    kid: str

    def jwk(self, **extra: Any) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256", **extra}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(**overrides: Any) -> dict[str, Any]:
    """Good claims; an override of None leaves that claim out."""
    now = int(time.time())
    good: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ada@example.test",
        "org_id": "org-sso",
        "scope": "runs:read runs:start",
        "iat": now,
        "exp": now + 300,
    }
    good.update(overrides)
    return {name: value for name, value in good.items() if value is not None}


def sign(key: Key, kid: str | None = None, alg: str = "RS256", **overrides: Any) -> str:
    return jwt.encode(
        claims(**overrides), key.private, algorithm=alg, headers={"kid": kid or key.kid}
    )


def hand_made(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT will not make: HS256 keyed by `secret`, or unsigned when it is None."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(body).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


@dataclass
class Issuer:
    """What the local issuer publishes at `url`, and how many times it was asked."""

    url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    fetches: int = 0


@pytest.fixture(scope="module")
def keys() -> list[Key]:
    return [
        Key(rsa.generate_private_key(public_exponent=65537, key_size=2048), f"k{n}-{uuid.uuid4()}")
        for n in range(3)
    ]


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[Issuer]:
    state = Issuer("")

    async def jwks(request: Request) -> JSONResponse:
        state.fetches += 1
        if state.status != 200:
            return JSONResponse({"error": "down for maintenance"}, status_code=state.status)
        return JSONResponse({"keys": state.keys})

    server = ApiServer(Starlette(routes=[Route("/.well-known/jwks.json", jwks)]), free_port())
    await server.start()
    state.url = f"{server.address}/.well-known/jwks.json"
    try:
        yield state
    finally:
        await server.stop()


@pytest.fixture
def issuer(served: Issuer, keys: list[Key]) -> Issuer:
    """The local issuer, publishing the first key only, its fetch count reset."""
    served.keys, served.status, served.fetches = [keys[0].jwk()], 200, 0
    return served


@pytest.fixture
async def verifier(issuer: Issuer) -> AsyncIterator[OidcVerifier]:
    verifier = OidcVerifier(OidcConfig(ISSUER, AUDIENCE, issuer.url))
    try:
        yield verifier
    finally:
        await verifier.aclose()


async def refused(verifier: OidcVerifier, token: str) -> str:
    """Why `verifier` refuses `token`; the reason never repeats the token or a part of it."""
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    message = str(caught.value)
    assert token not in message
    for segment in token.split("."):
        assert len(segment) < 8 or segment not in message, message
    return message


async def test_a_valid_token_names_its_org_subject_scopes_and_expiry(
    verifier: OidcVerifier, keys: list[Key]
) -> None:
    body = claims(scp=["approve", "events:send"])
    token = jwt.encode(body, keys[0].private, algorithm="RS256", headers={"kid": keys[0].kid})
    identity = await verifier.verify(token)
    assert identity.org_id == "org-sso"
    assert identity.subject == "ada@example.test"
    assert identity.scopes == {"runs:read", "runs:start", "approve", "events:send"}
    assert identity.expires_at == float(body["exp"])


async def test_an_audience_list_that_holds_ours_is_accepted(
    verifier: OidcVerifier, keys: list[Key]
) -> None:
    token = sign(keys[0], aud=["another-api", AUDIENCE], scope=None, scp="runs:read")
    identity = await verifier.verify(token)
    assert identity.scopes == {"runs:read"}


async def test_org_and_name_claims_can_be_namespaced_keys_or_dotted_paths(
    issuer: Issuer, keys: list[Key]
) -> None:
    config = OidcConfig(
        ISSUER, AUDIENCE, issuer.url, org_claim="https://example.test/org", name_claim="user.email"
    )
    verifier = OidcVerifier(config)
    try:
        token = sign(
            keys[0], org_id=None, **{"https://example.test/org": "org-ns"}, user={"email": "a@b.c"}
        )
        identity = await verifier.verify(token)
        assert (identity.org_id, identity.subject) == ("org-ns", "a@b.c")
        nameless = sign(keys[0], org_id=None, **{"https://example.test/org": "org-ns"}, user={})
        assert "missing claim 'user.email'" in await refused(verifier, nameless)
    finally:
        await verifier.aclose()


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"iss": "https://evil.example.test"}, "wrong issuer"),
        ({"iss": ISSUER + "/"}, "wrong issuer"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"org_id": None}, "missing claim 'org_id'"),
        ({"org_id": ""}, "missing claim 'org_id'"),
        ({"org_id": 42}, "missing claim 'org_id'"),
        ({"sub": None}, "missing claim 'sub'"),
        ({"exp": None}, "missing claim 'exp'"),
        ({"iat": None}, "missing claim 'iat'"),
        ({"aud": None}, "missing claim 'aud'"),
        ({"scope": 7}, "claim 'scope'"),
    ],
)
async def test_a_token_whose_claims_do_not_fit_is_refused_saying_why(
    verifier: OidcVerifier, keys: list[Key], overrides: dict[str, Any], says: str
) -> None:
    assert says in await refused(verifier, sign(keys[0], **overrides))


async def test_an_hs256_token_keyed_with_the_public_key_is_refused(
    verifier: OidcVerifier, issuer: Issuer, keys: list[Key]
) -> None:
    """The classic confusion: the issuer's public key, which anyone has, used as an HMAC secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": keys[0].kid}
    for secret in (keys[0].public_pem(), json.dumps(keys[0].jwk()).encode()):
        forged = hand_made(header, claims(scope="admin"), secret)
        assert "algorithm 'HS256' is not allowed" in await refused(verifier, forged)
    assert issuer.fetches == 0, "refused before any key was looked up"


async def test_an_unsigned_alg_none_token_is_refused(
    verifier: OidcVerifier, keys: list[Key]
) -> None:
    for alg in ("none", "None", "NONE"):
        unsigned = hand_made({"alg": alg, "kid": keys[0].kid}, claims(scope="admin"), None)
        assert f"algorithm {alg!r} is not allowed" in await refused(verifier, unsigned)


async def test_a_token_signed_by_another_key_under_a_known_kid_has_a_bad_signature(
    verifier: OidcVerifier, keys: list[Key]
) -> None:
    assert "bad signature" in await refused(verifier, sign(keys[1], kid=keys[0].kid))


async def test_a_key_published_for_rs256_does_not_verify_another_algorithm(
    issuer: Issuer, keys: list[Key]
) -> None:
    verifier = OidcVerifier(OidcConfig(ISSUER, AUDIENCE, issuer.url, algorithms=("RS256", "PS256")))
    try:
        message = await refused(verifier, sign(keys[0], alg="PS256"))
        assert "algorithm not allowed for the key" in message
    finally:
        await verifier.aclose()


async def test_an_unknown_kid_refetches_the_jwks_once_then_is_refused(
    verifier: OidcVerifier, issuer: Issuer, keys: list[Key]
) -> None:
    await verifier.verify(sign(keys[0]))
    assert issuer.fetches == 1
    assert "unknown key id" in await refused(verifier, sign(keys[1]))
    assert issuer.fetches == 2, "one refetch, in case the issuer rotated its keys"
    for _ in range(20):  # a flood of made-up key ids does not reach the issuer
        await refused(verifier, sign(keys[1], kid=f"random-{uuid.uuid4()}"))
    assert issuer.fetches == 2
    await verifier.verify(sign(keys[0]))
    assert issuer.fetches == 2, "known keys still verify from the cache"


async def test_a_rotated_key_is_accepted_after_one_refetch(
    verifier: OidcVerifier, issuer: Issuer, keys: list[Key]
) -> None:
    await verifier.verify(sign(keys[0]))
    issuer.keys = [keys[2].jwk()]  # the issuer rotates: a new key, the old one gone
    identity = await verifier.verify(sign(keys[2], sub="after-rotation"))
    assert identity.subject == "after-rotation"
    assert issuer.fetches == 2
    assert "unknown key id" in await refused(verifier, sign(keys[0]))


async def test_concurrent_verifies_share_one_jwks_fetch(
    verifier: OidcVerifier, issuer: Issuer, keys: list[Key]
) -> None:
    tokens = [sign(keys[0], sub=f"user-{n}") for n in range(25)]
    identities = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert {identity.subject for identity in identities} == {f"user-{n}" for n in range(25)}
    assert issuer.fetches == 1


async def test_the_jwks_is_cached_for_its_ttl_then_fetched_again(
    issuer: Issuer, keys: list[Key]
) -> None:
    verifier = OidcVerifier(OidcConfig(ISSUER, AUDIENCE, issuer.url), jwks_ttl_seconds=0.3)
    try:
        token = sign(keys[0])
        await verifier.verify(token)
        await verifier.verify(token)
        assert issuer.fetches == 1
        await asyncio.sleep(0.4)
        await verifier.verify(token)
        assert issuer.fetches == 2
    finally:
        await verifier.aclose()


async def test_an_unreachable_jwks_is_issuer_unavailable_naming_the_url(keys: list[Key]) -> None:
    url = f"http://127.0.0.1:{free_port()}/jwks"  # nothing listens there
    verifier = OidcVerifier(OidcConfig(ISSUER, AUDIENCE, url), timeout_seconds=2.0)
    try:
        with pytest.raises(IssuerUnavailable, match=url):
            await verifier.verify(sign(keys[0]))
    finally:
        await verifier.aclose()


async def test_a_failing_issuer_is_issuer_unavailable_until_it_recovers(
    verifier: OidcVerifier, issuer: Issuer, keys: list[Key]
) -> None:
    issuer.status = 500
    token = sign(keys[0])
    with pytest.raises(IssuerUnavailable, match="HTTP 500") as caught:
        await verifier.verify(token)
    assert issuer.url in str(caught.value)
    results = await asyncio.gather(
        *(verifier.verify(token) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(result, IssuerUnavailable) for result in results)
    assert issuer.fetches <= 3, "verifies waiting on a failed fetch share its failure"
    issuer.status = 200
    assert (await verifier.verify(token)).org_id == "org-sso"


async def test_refusal_messages_never_contain_the_token(
    verifier: OidcVerifier, keys: list[Key]
) -> None:
    """`refused` checks each message; here the tokens are ones a log must not get back."""
    tokens = [
        "not-a-jwt",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc",
        sign(keys[0], iss="https://evil.example.test"),
        sign(keys[0], exp=int(time.time()) - 3600),
        sign(keys[1], kid=keys[0].kid),
        sign(keys[1], kid="no-such-key"),
        jwt.encode(claims(), keys[0].private, algorithm="RS256"),  # no kid at all
        hand_made({"alg": "HS256", "kid": keys[0].kid}, claims(), keys[0].public_pem()),
        sign(keys[0])[:-10],  # truncated signature
    ]
    for token in tokens:
        await refused(verifier, token)


@pytest.mark.parametrize("alg", ["HS256", "hs512", "none", "NONE"])
def test_hmac_and_none_algorithms_cannot_be_configured(alg: str) -> None:
    with pytest.raises(ValueError, match="not allowed"):
        OidcConfig(ISSUER, AUDIENCE, "https://sso.example.test/jwks", algorithms=("RS256", alg))


def test_config_from_env_is_off_without_an_issuer() -> None:
    assert config_from_env({}) is None
    assert config_from_env({"DURABLE_OIDC_AUDIENCE": AUDIENCE}) is None


def test_config_from_env_reads_every_variable_with_defaults() -> None:
    base = {
        "DURABLE_OIDC_ISSUER": ISSUER,
        "DURABLE_OIDC_AUDIENCE": AUDIENCE,
        "DURABLE_OIDC_JWKS_URL": "https://sso.example.test/jwks",
    }
    assert config_from_env(base) == OidcConfig(ISSUER, AUDIENCE, "https://sso.example.test/jwks")
    config = config_from_env(
        {
            **base,
            "DURABLE_OIDC_ORG_CLAIM": "https://example.test/org",
            "DURABLE_OIDC_ALGORITHMS": "RS256, ES256",
            "DURABLE_OIDC_NAME_CLAIM": "email",
        }
    )
    assert config is not None
    assert config.org_claim == "https://example.test/org"
    assert config.algorithms == ("RS256", "ES256")
    assert config.name_claim == "email"
    with pytest.raises(ValueError, match="not allowed"):
        config_from_env({**base, "DURABLE_OIDC_ALGORITHMS": "RS256,HS256"})


@pytest.mark.parametrize("missing", ["DURABLE_OIDC_AUDIENCE", "DURABLE_OIDC_JWKS_URL"])
def test_config_from_env_names_a_missing_variable(missing: str) -> None:
    environ = {
        "DURABLE_OIDC_ISSUER": ISSUER,
        "DURABLE_OIDC_AUDIENCE": AUDIENCE,
        "DURABLE_OIDC_JWKS_URL": "https://sso.example.test/jwks",
    }
    del environ[missing]
    with pytest.raises(ValueError, match=missing):
        config_from_env(environ)
