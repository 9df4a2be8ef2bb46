"""Registration tokens and runtime JWTs: every token a verifier must refuse, refused, with the
reason a log would show."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from workers.fleet import (
    REGISTRATION_PREFIX,
    RuntimeKeys,
    TokenRejected,
    issue_registration_token,
    registration_token_hash,
)

ISSUER, AUDIENCE = "https://durable.example", "durable-workers"


@pytest.fixture
def keys() -> RuntimeKeys:
    return RuntimeKeys.generate(issuer=ISSUER, audience=AUDIENCE, ttl=timedelta(minutes=15))


def mint(keys: RuntimeKeys, **kwargs: Any) -> str:
    token, _ = keys.mint(project="p1", org="acme", worker="w1", registration="r1", **kwargs)
    return token


def rejected(keys: RuntimeKeys, token: str) -> str:
    with pytest.raises(TokenRejected) as err:
        keys.verify(token)
    return err.value.reason


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_registration_tokens_are_random_prefixed_and_kept_as_a_hash() -> None:
    one, two = issue_registration_token(), issue_registration_token()
    assert one.plaintext.startswith(REGISTRATION_PREFIX) and one.plaintext != two.plaintext
    assert one.hash == registration_token_hash(one.plaintext) and one.plaintext not in one.hash
    assert one.plaintext.startswith(one.prefix) and len(one.prefix) < len(one.plaintext) // 2


def test_a_minted_token_verifies_with_every_claim(keys: RuntimeKeys) -> None:
    token, minted = keys.mint(project="p1", org="acme", worker="w1", registration="r1")
    claims = keys.verify(token)
    assert claims == minted
    assert (claims.proj, claims.org, claims.sub, claims.reg, claims.scope) == (
        "p1",
        "acme",
        "w1",
        "r1",
        "worker",
    )
    assert claims.exp - claims.iat == 15 * 60 and claims.iss == ISSUER and claims.aud == AUDIENCE
    assert jwt.get_unverified_header(token)["kid"] == keys.jwks()["keys"][0]["kid"]


def test_the_jwks_verifies_tokens_elsewhere(keys: RuntimeKeys) -> None:
    """What a Temporal cluster's JWT authorizer does with the published keys: its default key
    provider takes RS256 and ES256 keys (kty RSA or EC) from a JWKS, and its default claim
    mapper reads `sub` and the `<namespace>:<role>` entries of `permissions`."""
    token = mint(keys)
    (jwk,) = keys.jwks()["keys"]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("EC", "P-256", "ES256")
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    public = jwt.PyJWK(jwk).key
    payload = jwt.decode(token, public, algorithms=["ES256"], audience=AUDIENCE)
    assert payload["sub"] == "w1" and payload["permissions"] == ["default:worker"]
    elsewhere = RuntimeKeys(keys._keys, issuer=ISSUER, audience=AUDIENCE, namespace="prod")
    assert elsewhere.verify(mint(elsewhere)).permissions == ["prod:worker"]


def test_only_p256_keys_sign() -> None:
    with pytest.raises(ValueError, match="not P-256"):
        RuntimeKeys(
            [("k", ec.generate_private_key(ec.SECP384R1()))], issuer=ISSUER, audience=AUDIENCE
        )


def test_expired_and_not_yet_valid_tokens_are_refused(keys: RuntimeKeys) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert rejected(keys, mint(keys, now=long_ago)) == "expired"
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert rejected(keys, mint(keys, now=later)) == "not yet valid"


def test_wrong_audience_issuer_signature_and_unknown_kid_are_refused(keys: RuntimeKeys) -> None:
    token = mint(keys)
    other_audience = RuntimeKeys(keys._keys, issuer=ISSUER, audience="someone-else")
    assert rejected(other_audience, token) == "wrong audience"
    other_issuer = RuntimeKeys(keys._keys, issuer="https://evil.example", audience=AUDIENCE)
    assert rejected(other_issuer, token) == "wrong issuer"
    kid = keys.jwks()["keys"][0]["kid"]
    impostor = RuntimeKeys(
        [(kid, ec.generate_private_key(ec.SECP256R1()))], issuer=ISSUER, audience=AUDIENCE
    )
    assert rejected(keys, mint(impostor)) == "bad signature", "same kid, another key"
    stranger = RuntimeKeys.generate(issuer=ISSUER, audience=AUDIENCE)
    assert rejected(keys, mint(stranger)).startswith("unknown key id")
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = b64({**claims, "proj": "someone-elses-project"})
    assert rejected(keys, f"{header}.{forged}.{signature}") == "bad signature", "a changed claim"


def test_alg_none_and_other_algorithms_are_refused(keys: RuntimeKeys) -> None:
    kid = keys.jwks()["keys"][0]["kid"]
    _, payload, _ = mint(keys).split(".")
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{payload}."
    assert rejected(keys, unsigned) == "algorithm 'none' is not accepted"
    hs256 = jwt.encode(
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        "a-shared-secret-long-enough-for-hs256!",
        algorithm="HS256",
        headers={"kid": kid},
    )
    assert rejected(keys, hs256) == "algorithm 'HS256' is not accepted"
    eddsa = mint(keys).split(".")[0]
    assert "ES256" in base64.urlsafe_b64decode(eddsa + "==").decode()
    forged_alg = f"{b64({'alg': 'EdDSA', 'typ': 'JWT', 'kid': kid})}.{payload}.AAAA"
    assert rejected(keys, forged_alg) == "algorithm 'EdDSA' is not accepted"
    assert rejected(keys, "not-a-jwt").startswith("malformed token")


def worker_claims(now: int) -> dict[str, object]:
    """Every claim a worker's runtime JWT needs but `exp`, issued `now`."""
    return {
        "proj": "p1",
        "org": "acme",
        "sub": "w1",
        "reg": "r1",
        "scope": "worker",
        "permissions": ["default:worker"],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "jti": "j",
    }


def test_a_token_missing_a_claim_is_refused(keys: RuntimeKeys) -> None:
    kid, key = keys._keys[0]
    now = int(datetime.now(UTC).timestamp())
    for missing in ("reg", "jti", "nbf", "proj", "permissions"):
        claims = {**worker_claims(now), "exp": now + 60}
        del claims[missing]
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
        assert rejected(keys, token) == f"missing claim {missing!r}"


def test_a_validly_signed_token_living_longer_than_the_ttl_is_refused(keys: RuntimeKeys) -> None:
    """Whatever a token says, it lives at most the TTL we mint (15 min here) plus a minute:
    a 100-year token signed with the real key is refused."""
    kid, key = keys._keys[0]
    now = int(datetime.now(UTC).timestamp())
    base = worker_claims(now)

    def signed(**claims: int) -> str:
        return jwt.encode({**base, **claims}, key, algorithm="ES256", headers={"kid": kid})

    century = 100 * 365 * 24 * 3600
    assert rejected(keys, signed(exp=now + century)) == (
        f"lifetime of {century} s exceeds the maximum of 960 s"
    )
    assert "exceeds the maximum" in rejected(keys, signed(exp=now + 15 * 60 + 61))
    # An `iat` moved forward to hide the lifetime is refused too.
    assert rejected(keys, signed(iat=now + century - 60, exp=now + century)) == "not yet valid"
    # Within the TTL and its leeway: accepted.
    assert keys.verify(signed(exp=now + 15 * 60 + 60)).sub == "w1"
