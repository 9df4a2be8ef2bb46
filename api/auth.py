"""Who is calling: every HTTP route but the signed Linear webhook, the JWKS and health needs a
principal, bound to one org, from a verified credential.

`Authorization: Bearer <credential>` carries either an API key (`dk_<org>_<id>_<secret>`, made
with `durable keys create`) or, when the operator configured an OIDC issuer, a JWT from it. The
org of every read and write is the principal's org; nothing in a header or a body names it.

A verified key is kept for `cache_seconds` (10 s by default), so checking it costs a dictionary
lookup, not a database round trip; a revoked key is refused within that time. Failures are
never cached, and no message repeats the credential.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from store import CONNECTION_ERRORS, KeyStore

from .errors import server_error
from .oidc import InvalidToken, IssuerUnavailable, OidcVerifier

log = logging.getLogger("durable.api.auth")

# What a principal may do. `admin` holds every other scope in its own org; reading another
# org's data is `cross-org:read` alone, which nothing implies (each such read is logged).
SCOPES: dict[str, str] = {
    "events:send": "send events (POST /events) that start no run and answer no approval",
    "runs:start": "send events that start runs",
    "runs:read": "read runs' steps, agent sessions and events",
    "approve": "answer a run's approval (rensei/approval.resolved)",
    "admin": "every scope above in its own org, and fleet administration",
    "cross-org:read": "read another org's runs, sessions and events with ?org= (each read logged)",
}
ADMIN = "admin"
CROSS_ORG = "cross-org:read"
# What an org id may be (durable.Tenancy's pattern): an OIDC org claim must fit it too.
ORG_ID = re.compile(r"^[A-Za-z0-9.:-]{1,200}$")
CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Principal:
    """A verified caller.

    Attributes:
        org_id: The one org it acts for.
        name: Who it is, for audit: `key:<name>` or `oidc:<subject>`.
        scopes: What it may do (see SCOPES).
    """

    org_id: str
    name: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        if scope == CROSS_ORG:  # never implied: admin of one org is not an operator of all
            return CROSS_ORG in self.scopes
        return scope in self.scopes or ADMIN in self.scopes


class Unauthenticated(Exception):
    """No credential, or one that is not valid now: 401. The message never holds it."""


def unknown_scopes(scopes: list[str]) -> list[str]:
    return [scope for scope in scopes if scope not in SCOPES]


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class Authenticator:
    def __init__(
        self, keys: KeyStore, oidc: OidcVerifier | None = None, *, cache_seconds: float = 10.0
    ) -> None:
        self._keys = keys
        self._oidc = oidc
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def principal(self, request: Request) -> Principal:
        """The caller of `request`. Raises Unauthenticated, or IssuerUnavailable / a store
        connection error when the credential cannot be checked now."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(
                "this route needs a credential: send 'Authorization: Bearer <API key or token>'"
                " (make a key with `durable keys create`)"
            )
        if credential.startswith("dk_"):
            return await self._key(credential)
        if self._oidc is None:
            raise Unauthenticated("the credential is not an API key, and no OIDC issuer is set")
        try:
            identity = await self._oidc.verify(credential)
        except InvalidToken as err:
            raise Unauthenticated(f"the bearer token was refused: {err}") from None
        if not ORG_ID.match(identity.org_id):
            raise Unauthenticated(
                "the bearer token's org claim is not an org id (1-200 of A-Z a-z 0-9 . : -)"
            )
        return Principal(identity.org_id, f"oidc:{identity.subject}", identity.scopes)

    async def _key(self, secret: str) -> Principal:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        key = await self._keys.verify(secret)
        if key is None:
            raise Unauthenticated("the API key is not valid")
        if not key.usable_at(datetime.now(UTC)):
            raise Unauthenticated(f"the API key {key.prefix} is revoked or expired")
        principal = Principal(key.org_id, f"key:{key.name}", frozenset(key.scopes))
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        until = now + self.cache_seconds
        if key.expires_at is not None:
            until = min(until, now + (key.expires_at - datetime.now(UTC)).total_seconds())
        self._cache[digest] = (principal, until)
        return principal


Handler = Callable[[Request, Principal], Awaitable[Response]]


def guarded(
    auth: Authenticator, scope: str | None, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    """A route that answers 401 without a valid credential, 403 without `scope` (None: the
    handler checks scopes itself), 503 when the credential cannot be checked now, and otherwise
    calls `handler(request, principal)`."""

    async def route(request: Request) -> Response:
        try:
            principal = await auth.principal(request)
        except Unauthenticated as err:
            return _error(401, str(err), **{"WWW-Authenticate": 'Bearer realm="durable"'})
        except IssuerUnavailable as err:
            return server_error(
                request,
                503,
                "cannot check the bearer token now: the identity provider is unreachable; try "
                "again",
                err,
            )
        except CONNECTION_ERRORS as err:
            return server_error(
                request,
                503,
                "cannot check the API key now: the key store is unreachable; try again",
                err,
            )
        if scope is not None and not principal.can(scope):
            return _error(403, f"{principal.name} lacks the scope {scope!r} this route needs")
        return await handler(request, principal)

    return route


def org_to_read(request: Request, principal: Principal) -> str | JSONResponse:
    """The org a read is for: the principal's, or with `cross-org:read` the `?org=` it names
    (logged with who asked). Anyone else naming another org is refused."""
    asked = request.query_params.get("org")
    if asked is None or asked == principal.org_id:
        return principal.org_id
    if not principal.can(CROSS_ORG):
        return _error(403, f"{principal.name} may read only org {principal.org_id!r}")
    who = {"principal": principal.name, "principal_org": principal.org_id}
    log.warning("cross-org read", extra={**who, "org": asked, "path": request.url.path})
    return asked
