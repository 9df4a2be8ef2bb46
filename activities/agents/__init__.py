"""Agent sessions: runtimes (a subprocess, an HTTP chat-completions endpoint), the steps that
run them and keep their output in Postgres, and the project route table."""

import sys
from pathlib import Path

from .chat import ChatCompletionsRuntime
from .command import CommandRuntime
from .models import (
    LOCAL_AUTH_MODES,
    AgentRan,
    AgentSessionCompleted,
    AgentSessionRequested,
    Announce,
    Announced,
    AuthMode,
    CancelSessions,
    FinishSession,
    RunAgent,
    SessionCompletion,
    SessionFinished,
    SessionRequest,
    SessionsCancelled,
    SessionStatus,
    clip,
)
from .routes import ProjectRoutes
from .runtime import (
    AgentRuntime,
    AgentRuntimeError,
    AgentTimedOut,
    AgentUnavailable,
    RuntimeIO,
    RuntimeRequest,
    Transcript,
)
from .steps import (
    AgentActivities,
    ProgressHook,
    SessionControl,
    SessionFinisher,
    SessionProgress,
    SessionWriter,
    announce_completion,
    cancel_sessions,
    finish_session,
    run_agent,
)


def local_agent_command() -> list[str]:
    """The command of the shipped deterministic agent (`local_agent.py`), run by this Python."""
    return [sys.executable, str(Path(__file__).with_name("local_agent.py"))]


__all__ = [
    "AgentActivities",
    "SessionFinisher",
    "SessionWriter",
    "AgentRan",
    "AgentSessionCompleted",
    "AgentSessionRequested",
    "Announce",
    "Announced",
    "AgentRuntime",
    "AgentRuntimeError",
    "AgentTimedOut",
    "AgentUnavailable",
    "CancelSessions",
    "ChatCompletionsRuntime",
    "CommandRuntime",
    "FinishSession",
    "ProgressHook",
    "ProjectRoutes",
    "RunAgent",
    "RuntimeIO",
    "RuntimeRequest",
    "SessionCompletion",
    "SessionControl",
    "SessionFinished",
    "SessionProgress",
    "SessionRequest",
    "SessionStatus",
    "AuthMode",
    "LOCAL_AUTH_MODES",
    "SessionsCancelled",
    "Transcript",
    "announce_completion",
    "cancel_sessions",
    "clip",
    "finish_session",
    "local_agent_command",
    "run_agent",
]
