"""The models of agent sessions: what is asked, what is reported, and each step's input and
output. Large content (transcripts, results) never appears here: it is stored, and these carry
references."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

import durable

SessionStatus = Literal["completed", "failed", "cancelled", "timed_out"]
AuthMode = Literal["api-key", "oauth", "host-session", "local"]
# Auth modes that use the worker host's own login: only `local` pools may run them.
LOCAL_AUTH_MODES = ("host-session", "local")

# What a session's completion and its failure messages may carry at most, so history stays
# small; the whole text is in the session's stored transcript.
MAX_SUMMARY_CHARS = 500
MAX_ERROR_CHARS = 2000


class SessionRequest(BaseModel):
    """The data of `rensei/pm.agent-session.requested`: run an agent on a prompt.

    Attributes:
        prompt: What the agent is asked.
        context: JSON the agent is given beside the prompt (issues, documents, flags).
        runtime: A runtime the worker knows by name (`local`: the shipped deterministic agent;
            `http`: the configured chat-completions endpoint). The event names it; the worker
            holds its command or endpoint, so an event cannot pick what runs.
        project: Chooses the task queue the session runs on (the route table); empty: the
            dispatching run's project.
        timeout: How long the agent may run, e.g. "30m"; past it the session is `timed_out`.
        requested_by: The run that dispatched it (set by `dispatch_agent`).
        linear_agent_session_id: The Linear agent session this work answers, if any: its
            progress lines are posted there as agent activities (thoughts).
        agent_id: The agent the session works for (a PM agent's observation agent id, e.g.
            `pm-backlog-triage`); stored with the session and carried by its completion, so
            memory consolidation and the completion bridge can find an agent's sessions.
        auth_mode: How the agent authenticates to its model: `api-key` (default) or `oauth`
            run anywhere; `host-session` and `local` use the worker host's own login and may
            only run on `local` pools (a route that offers none fails the session pre-flight).
    """

    prompt: str
    context: dict[str, Any] = {}
    runtime: str = "local"
    project: str = ""
    timeout: str = "30m"
    requested_by: str = ""
    linear_agent_session_id: str = ""
    agent_id: str = ""
    auth_mode: AuthMode = "api-key"

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        durable.parse_duration(value)
        return value


class SessionCompletion(BaseModel):
    """The data of `rensei/pm.agent-session.completed`, sent once when a session ends.

    Attributes:
        session_id: The session (its run id).
        status: completed, failed, cancelled or timed_out.
        result_ref: Where its result and transcript are stored (`agent-session:<id>`).
        summary: A short summary of the result (at most 500 characters).
        error: Why it did not complete, readable (at most 2000 characters).
        agent_id: The agent the session worked for (from its request).
    """

    session_id: str
    status: SessionStatus
    result_ref: str = ""
    summary: str = ""
    error: str = ""
    agent_id: str = ""


class AgentSessionRequested(durable.Event[SessionRequest]):
    """Starts an agent session (the session run's trigger); its id makes the session's id."""

    type: ClassVar[str] = "rensei/pm.agent-session.requested"


class AgentSessionCompleted(durable.Event[SessionCompletion]):
    """A session reached a terminal state; sent once per session run. Wait for it with
    `where={"data.session_id": session_id}`."""

    type: ClassVar[str] = "rensei/pm.agent-session.completed"


class RunAgent(BaseModel):
    """Input of the step that runs the agent runtime."""

    session_id: str
    runtime: str
    prompt: str
    context: dict[str, Any] = {}
    timeout_seconds: float = Field(gt=0)
    requested_by: str = ""
    project: str = ""
    linear_agent_session_id: str = ""
    agent_id: str = ""


class AgentRan(BaseModel):
    result_ref: str
    summary: str = ""
    progress_lines: int = 0


class FinishSession(BaseModel):
    """Input of the step that records a session's terminal status."""

    session_id: str
    runtime: str
    status: SessionStatus
    error: str = ""
    requested_by: str = ""
    project: str = ""
    agent_id: str = ""


class SessionFinished(BaseModel):
    status: SessionStatus  # as stored: the first terminal status recorded wins


class Announce(BaseModel):
    """Input of the step that sends the completion. `event_id` is fixed per session run, so
    however often the step is repeated the event is stored and acted on once."""

    event_id: str
    completion: SessionCompletion


class Announced(BaseModel):
    event_id: str
    duplicate: bool = False


class CancelSessions(BaseModel):
    session_ids: list[str]
    reason: str = ""


class SessionsCancelled(BaseModel):
    requested: list[str] = []  # cancellation was asked of these
    finished: list[str] = []  # these had already ended
    unknown: list[str] = []  # no such run (never started)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
