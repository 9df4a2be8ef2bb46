"""Verify OIDC bearer tokens (JWTs) from one configured issuer, for the HTTP API.

A token is accepted when its header `alg` is one of the configured algorithms (never taken from
the token, never `none` or HS*), it is signed by a key of the issuer's JSON Web Key Set, and it
carries `exp`, `iat`, the exact `iss`, an `aud` holding our audience, the org claim and the name
claim. The JWKS is cached for `jwks_ttl_seconds`; a token with an unknown key id refetches it at
most once per KID_REFETCH_SECONDS, so a key rotation is picked up, but a flood of made-up
key ids cannot hammer the issuer. Concurrent verifies share one in-flight fetch.

InvalidToken (the API answers 401) says what is wrong and never repeats the token or its
contents; IssuerUnavailable (503) says the JWKS could not be fetched.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

KID_REFETCH_SECONDS = 10.0
MAX_TOKEN_CHARS = 16_384
_REQUIRED = ["exp", "iat", "iss", "aud"]


@dataclass(frozen=True)
class OidcConfig:
    issuer: str  # exact `iss` required
    audience: str  # `aud` must contain it
    jwks_url: str  # where the issuer publishes its JSON Web Key Set
    org_claim: str = "org_id"  # a top-level key, else a dotted path into nested objects
    algorithms: tuple[str, ...] = ("RS256",)  # pinned; never from the token header
    name_claim: str = "sub"  # who the principal is, for audit ("oidc:<value>")
    leeway_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("issuer", "audience", "jwks_url", "org_claim", "name_claim"):
            if not getattr(self, name):
                raise ValueError(f"OIDC config: {name} must not be empty")
        if isinstance(self.algorithms, str) or not self.algorithms:
            raise ValueError("OIDC config: algorithms must be a non-empty tuple of names")
        known = jwt.algorithms.get_default_algorithms()
        for alg in self.algorithms:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"OIDC config: algorithm {alg!r} is not allowed (only asymmetric ones are)"
                )
            if alg not in known:
                raise ValueError(f"OIDC config: unknown algorithm {alg!r}")


@dataclass(frozen=True)
class OidcIdentity:
    org_id: str
    subject: str  # value of name_claim
    scopes: frozenset[str]  # from `scope` (space-separated) and/or `scp` (list or string)
    expires_at: float  # exp, epoch seconds


class InvalidToken(Exception):
    """The token is not valid: the message says why and never contains the token."""


class IssuerUnavailable(Exception):
    """The issuer's JWKS could not be fetched, so the token cannot be checked now."""


def config_from_env(environ: Mapping[str, str]) -> OidcConfig | None:
    """The OIDC config the DURABLE_OIDC_* variables describe; None without an issuer."""
    issuer = environ.get("DURABLE_OIDC_ISSUER", "").strip()
    if not issuer:
        return None
    required = {}
    for var in ("DURABLE_OIDC_AUDIENCE", "DURABLE_OIDC_JWKS_URL"):
        required[var] = environ.get(var, "").strip()
        if not required[var]:
            raise ValueError(f"DURABLE_OIDC_ISSUER is set, but {var} is not")
    algorithms = environ.get("DURABLE_OIDC_ALGORITHMS", "").strip() or "RS256"
    return OidcConfig(
        issuer=issuer,
        audience=required["DURABLE_OIDC_AUDIENCE"],
        jwks_url=required["DURABLE_OIDC_JWKS_URL"],
        org_claim=environ.get("DURABLE_OIDC_ORG_CLAIM", "").strip() or "org_id",
        algorithms=tuple(alg.strip() for alg in algorithms.split(",") if alg.strip()),
        name_claim=environ.get("DURABLE_OIDC_NAME_CLAIM", "").strip() or "sub",
    )


def _claim(payload: Mapping[str, Any], name: str) -> Any:
    if name in payload:
        return payload[name]
    value: Any = payload
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _scopes(payload: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes.update(item for item in value if item)
        else:
            raise InvalidToken(f"malformed token: claim {name!r} is not a string or list")
    return frozenset(scopes)


_REFUSALS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidSignatureError, "bad signature"),
]


class OidcVerifier:
    def __init__(
        self, config: OidcConfig, *, jwks_ttl_seconds: float = 300.0, timeout_seconds: float = 5.0
    ) -> None:
        self.config = config
        self._ttl = jwks_ttl_seconds
        self._http = httpx.AsyncClient(timeout=timeout_seconds)
        self._lock = asyncio.Lock()
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = -math.inf  # monotonic time of the last good fetch
        self._attempted_at = -math.inf  # ... and of the last attempt, good or not
        self._last_error: str | None = None
        self._kid_refetch_at = -math.inf  # ... and of the last refetch for an unknown kid

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, token: str) -> OidcIdentity:
        """The identity `token` proves. Raises InvalidToken or IssuerUnavailable."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token: cannot read its header") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.config.algorithms:
            named = repr(alg[:16]) if isinstance(alg, str) else "(none named)"
            allowed = ", ".join(self.config.algorithms)
            raise InvalidToken(f"algorithm {named} is not allowed (this API accepts {allowed})")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("malformed token: its header names no key id ('kid')")
        jwk = await self._key(kid)
        if jwk is None:
            raise InvalidToken(f"unknown key id: no key of {self.config.jwks_url} has it")
        if jwk.get("alg", alg) != alg:
            raise InvalidToken("algorithm not allowed for the key the token names")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise InvalidToken("the key the token names cannot verify its algorithm") from None
        payload = self._decode(token, key, alg)
        org = _claim(payload, self.config.org_claim)
        if not isinstance(org, str) or not org.strip():
            raise InvalidToken(f"missing claim {self.config.org_claim!r} (a non-empty string)")
        subject = _claim(payload, self.config.name_claim)
        if not isinstance(subject, str) or not subject.strip():
            raise InvalidToken(f"missing claim {self.config.name_claim!r} (a non-empty string)")
        return OidcIdentity(org, subject, _scopes(payload), float(payload["exp"]))

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": _REQUIRED},
            )
        except jwt.MissingRequiredClaimError as err:
            raise InvalidToken(f"missing claim {err.claim!r}") from None
        except jwt.PyJWTError as err:
            for kind, message in _REFUSALS:
                if isinstance(err, kind):
                    raise InvalidToken(message) from None
            raise InvalidToken("malformed token") from None

    async def _key(self, kid: str) -> dict[str, Any] | None:
        started = time.monotonic()
        if started - self._fetched_at < self._ttl and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            if self._attempted_at >= started:  # a fetch ended while we waited: share it
                if self._last_error is not None:
                    raise IssuerUnavailable(self._last_error)
                return self._keys.get(kid)
            if now - self._fetched_at >= self._ttl:
                await self._fetch()
            elif kid not in self._keys and now >= self._kid_refetch_at + KID_REFETCH_SECONDS:
                self._kid_refetch_at = now
                await self._fetch()
            return self._keys.get(kid)

    async def _fetch(self) -> None:
        url = self.config.jwks_url
        try:
            try:
                response = await self._http.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                body = response.json()
            except httpx.HTTPStatusError as err:
                raise IssuerUnavailable(
                    f"cannot fetch the JWKS from {url}: HTTP {err.response.status_code}"
                ) from None
            except httpx.HTTPError as err:
                reason = str(err) or type(err).__name__
                raise IssuerUnavailable(f"cannot fetch the JWKS from {url}: {reason}") from None
            except ValueError:
                raise IssuerUnavailable(f"the JWKS at {url} is not JSON") from None
            keys = body.get("keys") if isinstance(body, dict) else None
            if not isinstance(keys, list):
                raise IssuerUnavailable(f"the JWKS at {url} has no 'keys' list")
        except IssuerUnavailable as err:
            self._attempted_at, self._last_error = time.monotonic(), str(err)
            raise
        self._keys = {
            key["kid"]: key
            for key in keys
            if isinstance(key, dict)
            and isinstance(key.get("kid"), str)
            and key.get("use", "sig") == "sig"
        }
        self._fetched_at = self._attempted_at = time.monotonic()
        self._last_error = None
