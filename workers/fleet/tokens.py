"""Registration tokens and runtime JWTs.

A registration token (`rsp_live_...`) is random, shown once, and kept only as its SHA-256; logs
name it by its first characters. A runtime JWT is short-lived and signed with ECDSA P-256
(`ES256`) under a key id (`kid`); verification pins the algorithm, the issuer and the audience,
and requires every claim, and a token may live no longer than the lifetime we mint (plus a
minute) whatever it says: a validly signed token claiming a longer life is refused. A rejection
carries its reason for the log; callers answer a bare 401.

ES256, and the `permissions` claim (`["<namespace>:worker"]`), because that is what Temporal's
own JWT authorizer takes: its default key provider reads RS256 and ES256 keys from a JWKS, and
its default claim mapper grants roles from `permissions`. So a Temporal cluster pointed at our
JWKS lets a fleet worker poll and complete its tasks with the same token, and nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ValidationError

REGISTRATION_PREFIX = "rsp_live_"
LOGGED_CHARS = len(REGISTRATION_PREFIX) + 6  # what a log may show of a registration token
RUNTIME_ALGORITHM = "ES256"
CLAIMS = (
    "proj",
    "org",
    "sub",
    "reg",
    "scope",
    "permissions",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
)


class TokenRejected(Exception):
    """A token that must not be accepted; `reason` is for the log, never the response."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class IssuedToken:
    plaintext: str  # shown once, to whoever created it
    hash: str  # what is stored
    prefix: str  # what logs show


def registration_token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def issue_registration_token() -> IssuedToken:
    plaintext = REGISTRATION_PREFIX + secrets.token_urlsafe(32)
    return IssuedToken(plaintext, registration_token_hash(plaintext), plaintext[:LOGGED_CHARS])


class RuntimeClaims(BaseModel):
    proj: str  # the project the worker serves
    org: str
    sub: str  # the worker id
    reg: str  # the registration it came from (re-checked on refresh)
    scope: str  # e.g. "worker"
    permissions: list[str]  # Temporal's roles: ["<namespace>:worker"]
    iss: str
    aud: str
    exp: int
    iat: int
    nbf: int
    jti: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class RuntimeKeys:
    """The signing keys, newest first: the first signs, all verify (a rotation keeps the old
    key until tokens it signed have expired). The JWKS lists the public halves."""

    def __init__(
        self,
        keys: list[tuple[str, ec.EllipticCurvePrivateKey]],
        *,
        issuer: str,
        audience: str,
        ttl: timedelta = timedelta(minutes=15),
        leeway: timedelta = timedelta(seconds=30),
        namespace: str = "default",
        lifetime_leeway: timedelta = timedelta(seconds=60),
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = list(keys)
        for kid, key in keys:
            if not isinstance(key.curve, ec.SECP256R1):
                raise ValueError(f"signing key {kid!r} is on {key.curve.name}, not P-256")
        self._public: dict[str, ec.EllipticCurvePublicKey] = {
            kid: k.public_key() for kid, k in keys
        }
        self.issuer, self.audience, self.ttl, self.leeway = issuer, audience, ttl, leeway
        self.namespace = namespace  # the Temporal namespace the `permissions` claim names
        # The longest life a token may have, whatever it says: what we mint, and a little more.
        self.max_lifetime = ttl + lifetime_leeway

    @classmethod
    def generate(cls, *, issuer: str, audience: str, **kwargs: Any) -> RuntimeKeys:
        return cls(
            [(uuid.uuid4().hex[:16], ec.generate_private_key(ec.SECP256R1()))],
            issuer=issuer,
            audience=audience,
            **kwargs,
        )

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, public in self._public.items():
            numbers = public.public_numbers()
            keys.append(
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": _b64(numbers.x.to_bytes(32, "big")),
                    "y": _b64(numbers.y.to_bytes(32, "big")),
                    "kid": kid,
                    "alg": RUNTIME_ALGORITHM,
                    "use": "sig",
                }
            )
        return {"keys": keys}

    def mint(
        self,
        *,
        project: str,
        org: str,
        worker: str,
        registration: str,
        scope: str = "worker",
        now: datetime | None = None,
    ) -> tuple[str, RuntimeClaims]:
        at = now or datetime.now(UTC)
        claims = RuntimeClaims(
            proj=project,
            org=org,
            sub=worker,
            reg=registration,
            scope=scope,
            permissions=[f"{self.namespace}:{scope}"],
            iss=self.issuer,
            aud=self.audience,
            iat=int(at.timestamp()),
            nbf=int(at.timestamp()),
            exp=int((at + self.ttl).timestamp()),
            jti=uuid.uuid4().hex,
        )
        kid, key = self._keys[0]
        token = jwt.encode(
            claims.model_dump(), key, algorithm=RUNTIME_ALGORITHM, headers={"kid": kid}
        )
        return token, claims

    def verify(self, token: str) -> RuntimeClaims:
        """The token's claims, or TokenRejected saying why."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise TokenRejected(f"malformed token: {err}") from None
        if header.get("alg") != RUNTIME_ALGORITHM:
            raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
        public = self._public.get(str(header.get("kid")))
        if public is None:
            raise TokenRejected(f"unknown key id {header.get('kid')!r}")
        try:
            payload = jwt.decode(
                token,
                public,
                algorithms=[RUNTIME_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad signature") from None
        except jwt.MissingRequiredClaimError as err:
            raise TokenRejected(f"missing claim {err.claim!r}") from None
        except jwt.PyJWTError as err:
            raise TokenRejected(f"invalid token: {err}") from None
        try:
            claims = RuntimeClaims.model_validate(payload)
        except ValidationError as err:
            raise TokenRejected(
                f"claims of the wrong shape: {err.error_count()} error(s)"
            ) from None
        longest = self.max_lifetime.total_seconds()
        if claims.exp - claims.iat > longest:
            raise TokenRejected(
                f"lifetime of {claims.exp - claims.iat} s exceeds the maximum of {longest:.0f} s"
            )
        if claims.exp - datetime.now(UTC).timestamp() > longest + self.leeway.total_seconds():
            raise TokenRejected(f"expires more than {longest:.0f} s from now")
        return claims
