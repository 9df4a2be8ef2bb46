"""The steps PM agents, audits and memory consolidation share: durable cursors ("since the last
run"), reading an agent session's stored result, and the orgs a scheduled run acts for."""

from .steps import (
    AdvanceCursor,
    Cursor,
    CursorKey,
    Orgs,
    PmActivities,
    ScheduledOrgs,
    SessionResult,
    SessionResultQuery,
    advance_cursor,
    read_cursor,
    scheduled_orgs,
    session_result,
)

__all__ = [
    "AdvanceCursor",
    "Cursor",
    "CursorKey",
    "Orgs",
    "PmActivities",
    "ScheduledOrgs",
    "SessionResult",
    "SessionResultQuery",
    "advance_cursor",
    "read_cursor",
    "scheduled_orgs",
    "session_result",
]
