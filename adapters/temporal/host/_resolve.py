"""Events handed to a run through Temporal itself: the `durable.resolve` Update, answered at
once (which wait the event resolved, or why not), and the `durable.event` signal without a step
id. Both are checked against the run's open waits and the event model, stored like any other
event (deduplicated by id, the wait closed in the store), then routed to the wait. Runs inside
the workflow sandbox."""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from durable import EventError, Tenancy, reserved_producer, scoped_event_id, validation_message
from durable._events import Event, check_size, contains

from ._event_activities import TakeEvent, Taken

RESOLVE_UPDATE = "durable.resolve"
# What an event's `data.via` says when it came to the run through Temporal (the API says "api").
VIA = "temporal"
# How many refused events a run keeps on show (details, `durable status`).
MAX_IGNORED = 10


class ResolveEvent(BaseModel):
    """The payload of the `durable.resolve` Update and of a `durable.event` signal without a
    step id: the event, as the HTTP API takes it (its org is the run's)."""

    model_config = ConfigDict(extra="forbid")

    type: str
    id: str = ""
    data: dict[str, Any] = {}


class Resolved(BaseModel):
    """The Update's answer: the wait the event resolved and the event as stored."""

    step_id: str
    event_id: str
    event_type: str


@dataclass
class OpenWait:
    step_id: str  # as the store knows it (a `wait_for_any` choice: "step[0]")
    shown: str  # the step the author named
    event: type[Event[Any]]
    match: dict[str, Any]
    registered: bool = False  # the store holds it: an event sent now finds it


@dataclass
class Waits:
    """The run's open waits, the event each finished wait took, and what it refused."""

    open: dict[str, OpenWait] = field(default_factory=dict)
    taken: dict[str, str] = field(default_factory=dict)  # store step id -> event id
    ignored: list[str] = field(default_factory=list)


def _reject(reason: str) -> ApplicationError:
    return ApplicationError(reason, type="EventRejected", non_retryable=True)


def _data_fields(event: type[Event[Any]]) -> dict[str, Any]:
    """The fields of an event type's data model (name -> pydantic FieldInfo)."""
    model = event.model_fields["data"].annotation
    return dict(getattr(model, "model_fields", {}))


def _placeholder(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)[0]
    return {str: "...", int: 0, float: 0.0, bool: False}.get(annotation)


def example(wait: OpenWait) -> dict[str, Any]:
    """An event that resolves `wait`: its match, and a placeholder for each other required
    field of the data model."""
    data = dict(wait.match.get("data", {}))
    for name, info in _data_fields(wait.event).items():
        if name not in data and info.is_required():
            data[name] = _placeholder(info.annotation)
    return {"type": wait.event.type, "data": data}


def resolve_command(workflow_id: str, wait: OpenWait) -> str:
    body = json.dumps(example(wait)).replace("'", "'\\''")
    return (
        f"temporal workflow update execute --workflow-id '{workflow_id}' "
        f"--name {RESOLVE_UPDATE} --input '{body}'"
    )


class Resolver:
    def __init__(
        self,
        waits: Waits,
        inbox: dict[str, dict[str, Any]],
        tenancy: Callable[[], Tenancy],
        store_call: Callable[[OpenWait, TakeEvent], Awaitable[Taken]],
        on_change: Callable[[], None],
    ) -> None:
        self.waits = waits
        self._inbox = inbox
        self._tenancy = tenancy
        self._store_call = store_call
        self._on_change = on_change
        # Read now: hints are also asked for while a run's coroutines are closed (eviction).
        self._workflow_id = workflow.info().workflow_id

    def hints(self) -> list[str]:
        return [resolve_command(self._workflow_id, w) for w in self.waits.open.values()]

    def check(self, raw: Any) -> tuple[OpenWait, Event[Any]]:
        """The open wait `raw` resolves and the event it makes, or the refusal (an
        ApplicationError of type EventRejected) that says why not. Changes nothing."""
        try:
            asked = ResolveEvent.model_validate(raw)
        except ValidationError as err:
            raise _reject(
                f'bad payload: give {{"type": "...", "id": "...", "data": {{...}}}} '
                f"({validation_message(err)})"
            ) from None
        reserved = reserved_producer(asked.type)
        if reserved is not None:
            raise _reject(f"events of type {reserved[0]}* {reserved[1]}")
        waits = list(self.waits.open.values())
        candidates = [w for w in waits if w.event.type == asked.type]
        if not candidates:
            now = ", ".join(sorted({f"{w.event.type} (in {w.shown})" for w in waits}))
            raise _reject(
                f"no open wait for {asked.type}: this run waits for " + (now or "no event now")
            )
        tenancy = self._tenancy()
        event_id = scoped_event_id(tenancy.org_id, asked.id) if asked.id else ""
        if event_id and event_id in self.waits.taken.values():
            step = next(s for s, e in self.waits.taken.items() if e == event_id)
            raise _reject(f"duplicate: event {asked.id!r} was already taken by step {step!r}")
        data = dict(asked.data)
        if "via" in _data_fields(candidates[0].event):
            data["via"] = VIA  # the channel it came by, whatever the sender wrote
        # No id given: the handler gives one from the run's deterministic uuid.
        document = {
            "id": event_id or scoped_event_id(tenancy.org_id, "unnamed"),
            "data": data,
            "tenancy": tenancy.model_dump(),
        }
        try:
            event = candidates[0].event.model_validate(document)
        except ValidationError as err:
            raise _reject(f"bad data for {asked.type}: {validation_message(err)}") from None
        try:
            check_size(event)
        except EventError as err:
            raise _reject(str(err)) from None
        as_json = event.model_dump(mode="json")
        for wait in candidates:
            if contains(as_json, wait.match):
                return wait, event
        needs = " or ".join(json.dumps(w.match) for w in candidates)
        raise _reject(
            f"does not match: the open wait for {asked.type} needs {needs}; got "
            f"{json.dumps({'data': as_json['data']})}"
        )

    async def take(self, raw: Any, how: str) -> Resolved:
        """Store the event and hand it to its wait; the answer says which wait took it."""
        wait, event = self.check(raw)
        if not raw.get("id"):
            named = scoped_event_id(self._tenancy().org_id, f"{how}:{workflow.uuid4()}")
            event = event.model_copy(update={"id": named})
        await workflow.wait_condition(
            lambda: wait.registered or wait.step_id not in self.waits.open
        )
        if wait.step_id in self.waits.open:
            info = workflow.info()
            request = TakeEvent(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                type=event.type,
                event=event.model_dump(mode="json"),
            )
            try:
                taken = await self._store_call(wait, request)
            except ActivityError as err:
                cause = err.cause
                raise _reject(
                    cause.message if isinstance(cause, ApplicationError) else str(err)
                ) from None
            if taken.step_id is not None and taken.event is not None:
                self._inbox.setdefault(taken.step_id, taken.event)
            elif taken.duplicate:
                raise _reject(
                    f"duplicate: event id {event.id!r} was received before and resolves no "
                    f"open wait of this run; send a new id"
                )
        await workflow.wait_condition(
            lambda: wait.step_id in self.waits.taken or wait.step_id not in self.waits.open
        )
        got = self.waits.taken.get(wait.step_id)
        if got != event.id:
            raise _reject(
                f"the wait {wait.shown!r} was resolved by another event ({got}) first"
                if got
                else f"the wait {wait.shown!r} ended before the event reached it"
            )
        return Resolved(step_id=wait.shown, event_id=event.id, event_type=event.type)

    def ignore(self, line: str) -> None:
        """Keep a refused event on show and in the worker's log."""
        workflow.logger.warning("a run ignored an event it cannot use: %s", line)
        self.waits.ignored = [*self.waits.ignored, line][-MAX_IGNORED:]
        self._on_change()

    async def on_signal(self, raw: Any) -> None:
        try:
            await self.take(raw, "signal")
        except ApplicationError as err:
            kind = raw.get("type", "?") if isinstance(raw, dict) else "?"
            named = f" id {raw['id']}" if isinstance(raw, dict) and raw.get("id") else ""
            self.ignore(f"signal durable.event {kind}{named}: {err.message}")
