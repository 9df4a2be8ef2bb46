"""PM-agent steps backed by Postgres. The org always comes from the run's tenancy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

import durable
from store import PmStore, SessionStore, session_of


class CursorKey(BaseModel):
    agent_id: str
    scope: str = ""  # e.g. a team id; empty for the whole org


class Cursor(BaseModel):
    cursor: datetime | None = None  # None before the agent's first finished run


class AdvanceCursor(CursorKey):
    cursor: datetime


class SessionResultQuery(BaseModel):
    result_ref: str = Field(description="A completion's result_ref (agent-session:<id>)")


class SessionResult(BaseModel):
    session_id: str
    status: str
    result: Any = None


class ScheduledOrgs(BaseModel):
    pass


class Orgs(BaseModel):
    orgs: list[str]


read_cursor = durable.declare_activity("pm.read-cursor", CursorKey, Cursor, timeout="30s")
advance_cursor = durable.declare_activity(
    "pm.advance-cursor",
    AdvanceCursor,
    Cursor,
    timeout="30s",
    # Idempotent and it must happen once the work is done: retry until the store is back.
    retry=durable.RetryPolicy(max_attempts=0, max_interval="30s"),
)
session_result = durable.declare_activity(
    "pm.session-result", SessionResultQuery, SessionResult, timeout="30s"
)
scheduled_orgs = durable.declare_activity("pm.scheduled-orgs", ScheduledOrgs, Orgs, timeout="30s")


def _org() -> str:
    org = durable.activity_context().info.tenancy.org_id
    if not org:
        raise durable.NonRetryableError(
            "this run belongs to no org; start it with one (durable start --org ..., or an "
            "event with a tenancy)",
            kind="NoOrg",
        )
    return org


class PmActivities:
    """Bound in the composition root with the pool and the orgs scheduled runs act for."""

    def __init__(self, pm: PmStore, sessions: SessionStore, orgs: Sequence[str] = ()) -> None:
        self._pm = pm
        self._sessions = sessions
        self._orgs = sorted(set(orgs))

    @durable.implements(read_cursor)
    async def read_cursor(self, input: CursorKey) -> Cursor:
        return Cursor(cursor=await self._pm.cursor(input.agent_id, _org(), input.scope))

    @durable.implements(advance_cursor)
    async def advance_cursor(self, input: AdvanceCursor) -> Cursor:
        info = durable.activity_context().info
        stored = await self._pm.advance(
            input.agent_id, _org(), input.scope, input.cursor, info.workflow_id
        )
        return Cursor(cursor=stored)

    @durable.implements(session_result)
    async def session_result(self, input: SessionResultQuery) -> SessionResult:
        try:
            session_id = session_of(input.result_ref)
        except ValueError as err:
            raise durable.NonRetryableError(str(err), kind="BadResultRef") from None
        org = _org()
        record = await self._sessions.get(session_id, org_id=org)
        # Another org's session reads exactly like a missing one.
        if record is None or record.org_id != org:
            raise durable.NonRetryableError(
                f"no agent session {session_id!r} in this org", kind="UnknownSession"
            )
        return SessionResult(session_id=session_id, status=record.status, result=record.result)

    @durable.implements(scheduled_orgs)
    async def scheduled_orgs(self, input: ScheduledOrgs) -> Orgs:
        return Orgs(orgs=self._orgs)
