"""Outages are waited out, not failed: a step attempt that fails only because PostgreSQL,
Temporal or another service (Linear) cannot be reached runs again inside the same attempt,
with backoff and heartbeats saying what it waits for, until shortly before the attempt's
timeout; only then does the attempt fail and the step's retry policy count it. Steps are
idempotent on retry already (their key is the same on every attempt), so running the body
again is what a retry would do, without spending an attempt on someone else's outage."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from durable import EventNotAcknowledged, ServiceUnavailable

log = logging.getLogger("durable.steps")

FIRST_DELAY = 0.5
MAX_DELAY = 10.0


def outage_of(err: BaseException) -> str | None:
    """The service an error says is unreachable, or None for any other failure."""
    if isinstance(err, ServiceUnavailable):
        return err.service or "a service"
    if isinstance(err, EventNotAcknowledged):
        return "PostgreSQL"
    if isinstance(
        err,
        asyncpg.PostgresConnectionError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError,
    ):
        return "PostgreSQL"
    if isinstance(err, RPCError) and err.status == RPCStatusCode.UNAVAILABLE:
        return "Temporal"
    if isinstance(err, httpx.TransportError):
        return "a service over HTTP"
    if isinstance(err, ConnectionError):  # refused, reset: the far end is away
        return "a service"
    return None


def _time_left(info: activity.Info) -> timedelta:
    """How long the attempt may still wait: its start-to-close timeout, less a margin to fail
    in good order."""
    limit = info.start_to_close_timeout
    if not limit:
        return timedelta(minutes=5)
    margin = max(limit * 0.1, timedelta(seconds=1))
    return info.started_time + limit - margin - datetime.now(UTC)


class Outage:
    """Tracks one attempt's waiting; `wait(err)` says whether to run the body again."""

    def __init__(self, info: activity.Info, heartbeat: object | None) -> None:
        self._info = info
        self._heartbeat = heartbeat
        self._delay = FIRST_DELAY
        self._waited = 0.0

    async def wait(self, err: BaseException) -> bool:
        service = outage_of(err)
        if service is None:
            return False
        left = _time_left(self._info).total_seconds()
        if left <= self._delay:
            return False
        if self._waited == 0:
            log.warning(
                "step waits for %s to come back",
                service,
                extra={"step_id": self._info.activity_id, "error": str(err)[:300]},
            )
        if callable(self._heartbeat):
            self._heartbeat(
                {"waiting_for": service, "error": str(err)[:300], "waited_s": self._waited}
            )
        await asyncio.sleep(self._delay)
        self._waited += self._delay
        self._delay = min(self._delay * 2, MAX_DELAY)
        return True
