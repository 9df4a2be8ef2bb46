"""The steps of an agent session, and the step that cancels sessions.

`run_agent` runs a runtime the worker knows by name, in a heartbeating activity (cancellation
reaches it within seconds and stops the runtime), writes each progress line to Postgres as it
comes, and keeps the transcript and result there: the step returns only a reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import durable
from store import NewSession, SessionStore, result_ref

from .models import (
    MAX_SUMMARY_CHARS,
    AgentRan,
    AgentSessionCompleted,
    Announce,
    Announced,
    CancelSessions,
    FinishSession,
    RunAgent,
    SessionFinished,
    SessionsCancelled,
    clip,
)
from .outage import outlast
from .runtime import MAX_PROGRESS_CHARS, AgentRuntime, RuntimeIO, RuntimeRequest, Transcript

log = logging.getLogger("durable.agents")

# On a failure or cancellation, how long the step may spend keeping the transcript so far.
SAVE_ON_FAILURE_SECONDS = 5.0

run_agent = durable.declare_activity(
    "agents.run-session", RunAgent, AgentRan, heartbeat_timeout="30s"
)
finish_session = durable.declare_activity(
    "agents.finish-session", FinishSession, SessionFinished, timeout="30s"
)
cancel_sessions = durable.declare_activity(
    "agents.cancel-sessions", CancelSessions, SessionsCancelled, timeout="1m"
)
announce_completion = durable.declare_activity(
    "agents.announce-completion",
    Announce,
    Announced,
    timeout="1m",
    # Idempotent (a fixed event id): retry until the event store takes it.
    retry=durable.RetryPolicy(max_attempts=0, max_interval="30s"),
)


@dataclass(frozen=True)
class SessionProgress:
    """One progress line, as given to the progress hook."""

    session_id: str
    attempt: int
    seq: int
    line: str
    tenancy: durable.Tenancy
    linear_agent_session_id: str = ""


# Called with every progress line after it is stored (e.g. to post it to Linear). A hook that
# fails is logged; the session goes on.
ProgressHook = Callable[[SessionProgress], Awaitable[None]]


def summary_of(result: Any) -> str:
    if isinstance(result, dict):
        for key in ("summary", "content"):
            if isinstance(result.get(key), str):
                return clip(result[key], MAX_SUMMARY_CHARS)
    return clip(json.dumps(result), MAX_SUMMARY_CHARS)


class SessionWriter(Protocol):
    """Where a running session's record goes: Postgres on the product's own workers
    (SessionStore), the platform API on a fleet worker (workers.fleet.daemon.ApiSessionWriter)."""

    async def open(self, session: NewSession) -> str: ...

    async def add_progress(
        self, session_id: str, attempt: int, seq: int, line: str, *, org_id: str
    ) -> None: ...

    async def save_output(
        self,
        session_id: str,
        attempt: int,
        transcript: list[dict[str, Any]],
        result: Any,
        *,
        org_id: str,
    ) -> None: ...


class AgentActivities:
    """Runs agent sessions; the session writer, the runtimes (by name) and the progress hook
    are given by the worker's composition root."""

    def __init__(
        self,
        store: SessionWriter,
        runtimes: Mapping[str, AgentRuntime],
        *,
        on_progress: ProgressHook | None = None,
    ) -> None:
        self._store = store
        self._runtimes = dict(runtimes)
        self._on_progress = on_progress

    def _runtime(self, name: str) -> AgentRuntime:
        runtime = self._runtimes.get(name)
        if runtime is None:
            known = ", ".join(sorted(self._runtimes)) or "none"
            raise durable.NonRetryableError(
                f"unknown agent runtime {name!r}; this worker has: {known}",
                kind="UnknownAgentRuntime",
            )
        return runtime

    @durable.implements(run_agent)
    async def run_agent(self, input: RunAgent) -> AgentRan:
        ctx = durable.activity_context()
        info = ctx.info
        runtime = self._runtime(input.runtime)
        opened = NewSession(
            session_id=input.session_id,
            run_id=info.run_id,
            runtime=input.runtime,
            prompt=input.prompt,
            requested_by=input.requested_by,
            org_id=info.tenancy.org_id,
            project=input.project,
            agent_id=input.agent_id,
        )
        await outlast(lambda: self._store.open(opened), "open the session")
        transcript = Transcript()
        count = 0

        async def progress(line: str) -> None:
            nonlocal count
            count += 1
            line = clip(line, MAX_PROGRESS_CHARS)
            transcript.add("progress", line)
            seq = count
            await outlast(
                lambda: self._store.add_progress(
                    input.session_id, info.attempt, seq, line, org_id=info.tenancy.org_id
                ),
                "record a progress line",
            )
            ctx.heartbeat({"progress_lines": count, "last": line})  # shown in the UI
            if self._on_progress is not None:
                try:
                    await self._on_progress(
                        SessionProgress(
                            input.session_id,
                            info.attempt,
                            count,
                            line,
                            info.tenancy,
                            input.linear_agent_session_id,
                        )
                    )
                except Exception:
                    log.exception("progress hook failed", extra={"session": input.session_id})

        request = RuntimeRequest(
            session_id=input.session_id,
            prompt=input.prompt,
            context=input.context,
            timeout_seconds=input.timeout_seconds,
        )
        log.info(
            "agent session running",
            extra={"session": input.session_id, "runtime": runtime.description},
        )
        try:
            result = await runtime.run(request, RuntimeIO(progress, transcript))
        except BaseException:
            # Keep what the agent said so far: the failure message quotes only its end.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._store.save_output(
                        input.session_id,
                        info.attempt,
                        transcript.stored(),
                        None,
                        org_id=info.tenancy.org_id,
                    ),
                    SAVE_ON_FAILURE_SECONDS,
                )
            raise
        await outlast(
            lambda: self._store.save_output(
                input.session_id,
                info.attempt,
                transcript.stored(),
                result,
                org_id=info.tenancy.org_id,
            ),
            "save the transcript and result",
        )
        return AgentRan(
            result_ref=result_ref(input.session_id),
            summary=summary_of(result),
            progress_lines=count,
        )


class SessionFinisher:
    """Records a session's terminal status (on the product's own workers, beside Postgres)."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    @durable.implements(finish_session)
    async def finish_session(self, input: FinishSession) -> SessionFinished:
        info = durable.activity_context().info
        stored = await self._store.finish(
            NewSession(
                session_id=input.session_id,
                run_id=info.run_id,
                runtime=input.runtime,
                prompt="",  # only for a session that never opened: it never ran a prompt
                requested_by=input.requested_by,
                org_id=info.tenancy.org_id,
                project=input.project,
                agent_id=input.agent_id,
            ),
            input.status,
            input.error or None,
        )
        return SessionFinished.model_validate({"status": stored})


class SessionControl:
    """Announces a session's end, and cancels sessions, through the durable client (the
    worker's, with the event ingress)."""

    def __init__(self, client: durable.DurableClient) -> None:
        self._client = client

    @durable.implements(cancel_sessions)
    async def cancel_sessions(self, input: CancelSessions) -> SessionsCancelled:
        out = SessionsCancelled()
        for session_id in input.session_ids:
            handle = self._client.get(session_id)
            try:
                if not (await handle.describe()).status.is_open:
                    out.finished.append(session_id)
                    continue
                await handle.cancel(input.reason)
            except durable.UnknownRun:
                out.unknown.append(session_id)
                continue
            out.requested.append(session_id)
        return out

    @durable.implements(announce_completion)
    async def announce_completion(self, input: Announce) -> Announced:
        tenancy = durable.activity_context().info.tenancy
        event = AgentSessionCompleted(
            id=input.event_id,
            data=input.completion,
            tenancy=None if tenancy == durable.Tenancy() else tenancy,
        )
        receipt = await self._client.send_event(event)
        return Announced(event_id=receipt.id, duplicate=receipt.duplicate)
