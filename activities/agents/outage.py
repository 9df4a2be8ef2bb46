"""Store calls of an agent session that wait out a PostgreSQL outage instead of failing the
session: a session may have run an agent for an hour, and a store that blinks must not cost it
its attempts. While it waits the step heartbeats what it waits for (the UI shows it)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import durable
from store import CONNECTION_ERRORS, describe_connection_error

log = logging.getLogger("durable.agents")

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 5.0  # well inside the session step's 30 s heartbeat timeout
MAX_WAIT = 15 * 60.0  # then the attempt fails as before, and is retried by the step's policy


async def outlast(call: Callable[[], Awaitable[T]], what: str) -> T:
    """`call()`, again and again while PostgreSQL is unreachable (up to MAX_WAIT)."""
    delay, waited = FIRST_DELAY, 0.0
    while True:
        try:
            return await call()
        except CONNECTION_ERRORS as err:
            if waited >= MAX_WAIT:
                raise
            reason = describe_connection_error(err)
            if waited == 0:
                log.warning("PostgreSQL unreachable; the session waits", extra={"error": reason})
            durable.activity_context().heartbeat(
                {"waiting_for": "PostgreSQL", "to": what, "error": reason, "waited_s": waited}
            )
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, MAX_DELAY)
