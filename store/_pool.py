"""The asyncpg pool, with an error that says what to check when Postgres is not there."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg


class DatabaseUnreachable(RuntimeError):
    """Postgres could not be reached at the configured DATABASE_URL."""


# What a call raises when the server is down, restarting or cut off mid-statement: no socket
# (OSError), a dropped or refused connection, a server shutting down (class 57P).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)


def describe_connection_error(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, OSError) and not isinstance(err, TimeoutError | ConnectionError):
        return f"cannot reach the database socket: {text}"
    return text


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn


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
        raise DatabaseUnreachable(
            f"cannot connect to Postgres at {redact(dsn)}: {err or type(err).__name__}. "
            f"Check DATABASE_URL, or unset it to use the embedded database."
        ) from err
    assert pool is not None
    return pool
