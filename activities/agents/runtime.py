"""What an agent runtime is: something that takes a prompt and context, reports progress lines
while it works, and answers a result. The session step runs one; implementations are a
subprocess (`command.py`) and an HTTP chat-completions endpoint (`chat.py`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

import durable

# A transcript stops growing here (the rest is counted, not kept): a runaway agent must not
# fill the database.
MAX_TRANSCRIPT_CHARS = 8 * 1024 * 1024
MAX_PROGRESS_CHARS = 2000


class AgentRuntimeError(durable.NonRetryableError):
    """The agent ran and misbehaved: it printed something unreadable, exited non-zero, or its
    endpoint answered with an error retrying will not fix. The session fails with this
    message."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="AgentRuntimeError")


class AgentTimedOut(durable.NonRetryableError):
    """The agent did not finish within the session's timeout; it was stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="AgentTimedOut")


class AgentUnavailable(Exception):
    """The runtime could not be reached or answered with a transient error; the step is
    retried."""


class RuntimeRequest(BaseModel):
    session_id: str
    prompt: str
    context: dict[str, Any] = {}
    timeout_seconds: float


@dataclass
class Transcript:
    """What went in and out of a runtime, in order: `{"stream", "text", "at"}` entries."""

    limit: int = MAX_TRANSCRIPT_CHARS
    entries: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    dropped: int = 0  # characters not kept past the limit

    def add(self, stream: str, text: str) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.dropped += len(text)
            return
        kept = text[:room]
        self.dropped += len(text) - len(kept)
        self.size += len(kept)
        self.entries.append({"stream": stream, "text": kept, "at": datetime.now(UTC).isoformat()})

    def stored(self) -> list[dict[str, Any]]:
        if not self.dropped:
            return self.entries
        note = f"{self.dropped} characters past the {self.limit}-character limit were dropped"
        return [*self.entries, {"stream": "note", "text": note, "at": ""}]


Progress = Callable[[str], Awaitable[None]]


@dataclass
class RuntimeIO:
    """What a runtime reports to while it runs."""

    progress: Progress
    transcript: Transcript


class AgentRuntime(ABC):
    """Runs an agent. Cancellation arrives as `asyncio.CancelledError`: stop what runs and
    re-raise. Raise AgentRuntimeError, AgentTimedOut or AgentUnavailable for failures."""

    @abstractmethod
    async def run(self, request: RuntimeRequest, io: RuntimeIO) -> Any:
        """Run the agent and return its result (any JSON value)."""

    @property
    @abstractmethod
    def description(self) -> str:
        """One line for listings and logs (no secrets)."""
