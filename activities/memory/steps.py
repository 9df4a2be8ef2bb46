"""Memory steps. A run with an org sees only that org's sessions and notes. A run without one
(the scheduled, platform-wide consolidation) finds which orgs have sessions to consolidate and
starts a run of each org for them; asked for one org's sessions (`PendingQuery.org_id`), it sees
only those ('' : the sessions of no org)."""

from __future__ import annotations

from pydantic import BaseModel, Field

import durable
from store import MemoryStore


class PendingQuery(BaseModel):
    limit: int = Field(500, ge=1, le=5000)
    exclude_agents: list[str] = []
    # Only this org's sessions ('' : those of no org). None: the run's org's, or every org's
    # for a run of none. A run of an org cannot ask for another's.
    org_id: str | None = None


class Outcome(BaseModel):
    session_id: str
    agent_id: str = ""
    summary: str = ""


class ProjectGroup(BaseModel):
    org_id: str
    project: str
    sessions: list[Outcome]


class PendingSessions(BaseModel):
    groups: list[ProjectGroup]

    @property
    def count(self) -> int:
        return sum(len(g.sessions) for g in self.groups)


class PendingOrgs(BaseModel):
    orgs: list[str]  # '' : sessions of no org


class NoteQuery(BaseModel):
    org_id: str
    project: str


class CurrentNote(BaseModel):
    note: str = ""
    sessions: int = 0


class WriteNote(BaseModel):
    org_id: str
    project: str
    note: str
    session_ids: list[str]
    # The note's `sessions` when it was read for this write; -1: write whatever it is now.
    based_on: int = -1


class WrittenNote(BaseModel):
    counted: int
    already: int = 0
    repeated: bool = False
    stale: bool = False  # another run changed the note meanwhile: nothing written


pending_sessions = durable.declare_activity(
    "memory.pending-sessions", PendingQuery, PendingSessions, timeout="1m"
)
pending_orgs = durable.declare_activity(
    "memory.pending-orgs", PendingQuery, PendingOrgs, timeout="1m"
)
current_note = durable.declare_activity("memory.current-note", NoteQuery, CurrentNote)
write_note = durable.declare_activity(
    "memory.write-note",
    WriteNote,
    WrittenNote,
    # Idempotent (one write per step): retry until the store is back, and soon after the
    # worker running it dies (a write takes milliseconds; its heartbeat is every second).
    retry=durable.RetryPolicy(max_attempts=0, max_interval="30s"),
    heartbeat_timeout="10s",
)


def _scope(org_id: str) -> None:
    own = durable.activity_context().info.tenancy.org_id
    if own and own != org_id:
        raise durable.NonRetryableError(
            f"a run of org {own!r} cannot touch org {org_id!r}'s memory", kind="WrongOrg"
        )


def _gathered(asked: str | None) -> str | None:
    """Whose sessions a gathering step sees: the run's org's; for a run of no org, the org it
    asks for, or every org's (None)."""
    own = durable.activity_context().info.tenancy.org_id
    if not own:
        return asked
    if asked is not None:
        _scope(asked)
    return own


class MemoryActivities:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    @durable.implements(pending_sessions)
    async def pending_sessions(self, input: PendingQuery) -> PendingSessions:
        found = await self._store.pending(
            org_id=_gathered(input.org_id), exclude_agents=input.exclude_agents, limit=input.limit
        )
        groups: dict[tuple[str, str], ProjectGroup] = {}
        for s in found:
            group = groups.setdefault(
                (s.org_id, s.project), ProjectGroup(org_id=s.org_id, project=s.project, sessions=[])
            )
            group.sessions.append(
                Outcome(session_id=s.session_id, agent_id=s.agent_id, summary=s.summary)
            )
        return PendingSessions(groups=[groups[k] for k in sorted(groups)])

    @durable.implements(pending_orgs)
    async def pending_orgs(self, input: PendingQuery) -> PendingOrgs:
        orgs = await self._store.pending_orgs(
            org_id=_gathered(input.org_id), exclude_agents=input.exclude_agents
        )
        return PendingOrgs(orgs=orgs)

    @durable.implements(current_note)
    async def current_note(self, input: NoteQuery) -> CurrentNote:
        _scope(input.org_id)
        found = await self._store.note(input.org_id, input.project)
        return (
            CurrentNote()
            if found is None
            else CurrentNote(note=found.note, sessions=found.sessions)
        )

    @durable.implements(write_note)
    async def write_note(self, input: WriteNote) -> WrittenNote:
        _scope(input.org_id)
        info = durable.activity_context().info
        written = await self._store.write(
            write_key=info.idempotency_key,
            org_id=input.org_id,
            project=input.project,
            note=input.note,
            session_ids=input.session_ids,
            workflow_id=info.workflow_id,
            based_on=None if input.based_on < 0 else input.based_on,
        )
        return WrittenNote(
            counted=written.counted,
            already=written.already,
            repeated=written.repeated,
            stale=written.stale,
        )
