"""The asyncpg pool, with an error that says what to check when Postgres is not there."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import unquote, unquote_plus

import asyncpg

from durable import ServiceUnavailable


class DatabaseUnreachable(RuntimeError):
    """Postgres could not be reached at the configured DATABASE_URL.

    Attributes:
        shown: The DSN it tried, redacted ('' when none was tried).
        why: What went wrong, with any password scrubbed.
    """

    def __init__(self, message: str, *, shown: str = "", why: str = "") -> None:
        super().__init__(message)
        self.shown = shown
        self.why = why


# What a call raises when the server is down, restarting or cut off mid-statement: no socket
# (OSError), a dropped or refused connection, a server shutting down (class 57P).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


class StoreUnavailable(ServiceUnavailable, ConnectionError):
    """PostgreSQL could not be reached for a store call. A ConnectionError, so whatever caught
    the driver's connection errors (CONNECTION_ERRORS) catches it too; a step that meets it
    waits for the store inside its attempt (durable.ServiceUnavailable)."""

    def __init__(self, err: BaseException) -> None:
        super().__init__(
            f"PostgreSQL is unreachable: {describe_connection_error(err)}", service="PostgreSQL"
        )


def describe_connection_error(err: BaseException) -> str:
    if isinstance(err, StoreUnavailable) and err.__cause__ is not None:
        err = err.__cause__
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, TimeoutError | ConnectionError):
        return f"cannot reach the database socket: {text}"
    return text


# Keys whose value is a secret, in a URL's query or a key=value DSN: `password`, `sslpassword`.
_SECRET_KEY = re.compile(r"^(?:ssl)?password$", re.IGNORECASE)
# A `key = value` pair of a libpq key=value DSN; the value may be single-quoted with \-escapes.
_KEYWORD_PAIR = re.compile(r"(?P<key>[A-Za-z_]+)(?P<eq>\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|\S*)")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MASK = "***"


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and _SECRET_KEY.match(unquote_plus(key).strip()):
            value = MASK
        pairs.append(f"{key}{eq}{value}")
    return "&".join(pairs)


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs: the password of a URL's user info
    (`postgresql://user:secret@host/db`, percent-encoded or not), a `password=` (or
    `sslpassword=`) in its query, and `password=...` in a key=value DSN
    (`host=db user=app password=secret`, quoted or not)."""
    if not _URL.match(dsn):
        return _KEYWORD_PAIR.sub(
            lambda m: f"{m['key']}{m['eq']}{MASK}" if _SECRET_KEY.match(m["key"]) else m[0], dsn
        )
    scheme, rest = dsn.split("://", 1)
    # The authority ends at the first '/', '?' or '#' (as urlsplit and asyncpg read it).
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hosts = authority.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{hosts}" if colon else authority
    path, q, query = tail.partition("?")
    if q:
        query, hash_, fragment = query.partition("#")
        tail = f"{path}?{_redact_query(query)}{hash_}{fragment}"
    return f"{scheme}://{authority}{tail}"


def secrets_of(dsn: str) -> set[str]:
    """The password values (3 characters or more) a DSN carries, as written and
    percent-decoded, to scrub them from an error's text that might echo them."""
    found: set[str] = set()
    if _URL.match(dsn):
        rest = dsn.split("://", 1)[1]
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        userinfo, at, _ = rest[:end].rpartition("@")
        if at and ":" in userinfo:
            found.add(userinfo.partition(":")[2])
        query = rest[end:].partition("?")[2].partition("#")[0]
        for pair in query.split("&") if query else []:
            key, eq, value = pair.partition("=")
            if eq and _SECRET_KEY.match(unquote_plus(key).strip()):
                found.add(value)
    else:
        for m in _KEYWORD_PAIR.finditer(dsn):
            if _SECRET_KEY.match(m["key"]):
                found.add(m["value"].strip("'"))
    found |= {unquote_plus(s) for s in found} | {unquote(s) for s in found}
    return {s for s in found if len(s) >= 3}  # shorter: scrubbing would garble the text


def scrub(text: str, dsn: str) -> str:
    """`text` with every password `dsn` carries replaced by ***."""
    for secret in sorted(secrets_of(dsn), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
) -> asyncpg.Pool:
    """Open a pool to `dsn`.

    Raises:
        DatabaseUnreachable: no connection within `timeout` seconds, or the server refused it.
    """
    try:
        pool = await asyncio.wait_for(
            asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size), timeout
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        # The error's text is scrubbed too: nothing promises it never echoes the password.
        why = scrub(str(err), dsn) or type(err).__name__
        raise DatabaseUnreachable(
            f"cannot connect to Postgres at {redact(dsn)}: {why}. "
            f"Check DATABASE_URL, or unset it to use the embedded database.",
            shown=redact(dsn),
            why=why,
        ) from err
    assert pool is not None
    return pool
