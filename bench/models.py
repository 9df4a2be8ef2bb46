"""The workload's input and output, shared by both versions so neither pays for the other."""

from __future__ import annotations

from pydantic import BaseModel


class Inp(BaseModel):
    n: int = 1
    steps: int = 1
    fast: bool = False


class Out(BaseModel):
    n: int


class WaitInp(BaseModel):
    """Input of the waiting workflows: nothing, the run waits for its own event."""


class Approval(BaseModel):
    """The event's data; `workflow_id` names the run it is for."""

    workflow_id: str
    decision: str = "approve"


class RawEvent(BaseModel):
    """The raw baseline's signal payload: the same shape as the durable event."""

    id: str
    data: Approval


class Received(BaseModel):
    """What a waiting run returns: the id of the event it received ("" if it timed out)."""

    event_id: str
