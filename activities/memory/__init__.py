"""Memory consolidation's steps: what is left to consolidate, a project's note, and writing a
note together with the sessions it consumed."""

from .steps import (
    CurrentNote,
    MemoryActivities,
    NoteQuery,
    Outcome,
    PendingOrgs,
    PendingQuery,
    PendingSessions,
    ProjectGroup,
    WriteNote,
    WrittenNote,
    current_note,
    pending_orgs,
    pending_sessions,
    write_note,
)

__all__ = [
    "CurrentNote",
    "MemoryActivities",
    "NoteQuery",
    "Outcome",
    "PendingOrgs",
    "PendingQuery",
    "PendingSessions",
    "ProjectGroup",
    "WriteNote",
    "WrittenNote",
    "current_note",
    "pending_orgs",
    "pending_sessions",
    "write_note",
]
