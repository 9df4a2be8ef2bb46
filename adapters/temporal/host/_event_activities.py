"""The steps behind `ctx.step.wait_for_event` and `ctx.step.send_event`, bound to the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

import durable

from ._ingress import EventIngress


class RegisterWait(BaseModel):
    workflow_id: str
    run_id: str
    step_id: str
    event_type: str
    match: dict[str, Any]
    not_before: datetime
    expires_at: datetime | None = None  # when its timeout is up (None: no timeout)


class CloseWait(BaseModel):
    workflow_id: str
    run_id: str
    step_id: str


class MaybeEvent(BaseModel):
    event: dict[str, Any] | None = None


class SettleAny(BaseModel):
    workflow_id: str
    run_id: str
    step_ids: list[str]
    keep: str | None = None


class Settled(BaseModel):
    step_id: str | None = None
    event: dict[str, Any] | None = None


class TakeEvent(BaseModel):
    """An event a run was handed through Temporal (Update or signal): store it as its org's,
    and close the run's wait it resolves."""

    workflow_id: str
    run_id: str
    type: str
    event: dict[str, Any]


class Taken(BaseModel):
    step_id: str | None = None  # the run's wait it resolved in the store
    event: dict[str, Any] | None = None  # as stored
    duplicate: bool = False


class SendEvent(BaseModel):
    type: str
    event: dict[str, Any]


class Sent(BaseModel):
    id: str
    duplicate: bool


register_wait = durable.declare_activity(
    "durable.register-wait", RegisterWait, MaybeEvent, fast=True, timeout="10s"
)
close_wait = durable.declare_activity(
    "durable.close-wait", CloseWait, MaybeEvent, fast=True, timeout="10s"
)
take_event = durable.declare_activity(
    "durable.take-event", TakeEvent, Taken, fast=True, timeout="30s"
)
settle_any = durable.declare_activity(
    "durable.settle-any", SettleAny, Settled, fast=True, timeout="10s"
)


class Slot(BaseModel):
    workflow_type: str
    key: str
    limit: int
    workflow_id: str


class Held(BaseModel):
    held: bool


# Sending is idempotent (the id comes from the run and step): retry until the store is back.
send_event = durable.declare_activity(
    "durable.send-event",
    SendEvent,
    Sent,
    timeout="1m",
    retry=durable.RetryPolicy(max_attempts=0, max_interval="30s"),
)
acquire_slot = durable.declare_activity(
    "durable.acquire-slot", Slot, Held, fast=True, timeout="10s"
)
release_slot = durable.declare_activity(
    "durable.release-slot", Slot, Held, fast=True, timeout="30s"
)


def _org() -> str:
    """The org of the run whose step this is (its tenancy travels with every step)."""
    return durable.activity_context().info.tenancy.org_id


class EventActivities:
    def __init__(self, ingress: EventIngress) -> None:
        self._ingress = ingress

    @durable.implements(register_wait)
    async def register_wait(self, input: RegisterWait) -> MaybeEvent:
        stored = await self._ingress.store.register_wait(
            input.workflow_id,
            input.run_id,
            input.step_id,
            input.event_type,
            input.match,
            input.not_before,
            # The run's org, from the step's tenancy: only an event of that org resolves it.
            org_id=_org(),
            expires_at=input.expires_at,
        )
        return MaybeEvent(event=stored.document() if stored else None)

    @durable.implements(close_wait)
    async def close_wait(self, input: CloseWait) -> MaybeEvent:
        stored = await self._ingress.store.close_wait(
            input.workflow_id, input.run_id, input.step_id, org_id=_org()
        )
        return MaybeEvent(event=stored.document() if stored else None)

    @durable.implements(settle_any)
    async def settle_any(self, input: SettleAny) -> Settled:
        step_id, stored = await self._ingress.store.settle_any(
            input.workflow_id, input.run_id, input.step_ids, input.keep, org_id=_org()
        )
        return Settled(step_id=step_id, event=stored.document() if stored else None)

    @durable.implements(take_event)
    async def take_event(self, input: TakeEvent) -> Taken:
        scope = input.event.get("tenancy") or {}
        if scope.get("org_id", "") != _org():
            raise durable.NonRetryableError("an event handed to a run is of the run's org")
        try:
            step_id, stored, duplicate = await self._ingress.take(
                input.type, input.event, input.workflow_id, input.run_id
            )
        except durable.EventConflict as err:
            raise durable.NonRetryableError(str(err), kind="EventConflict") from None
        return Taken(step_id=step_id, event=stored, duplicate=duplicate)

    @durable.implements(send_event)
    async def send_event(self, input: SendEvent) -> Sent:
        try:
            event = durable.parse_event(self._ingress.registry.event_type(input.type), input.event)
        except durable.EventError as err:  # no retry makes a bad event good
            raise durable.NonRetryableError(str(err), kind="EventError") from None
        receipt = await self._ingress.send(event)
        return Sent(id=receipt.id, duplicate=receipt.duplicate)

    @durable.implements(acquire_slot)
    async def acquire_slot(self, input: Slot) -> Held:
        held = await self._ingress.store.acquire_slot(
            input.workflow_type, input.key, input.limit, input.workflow_id, org_id=_org()
        )
        return Held(held=held)

    @durable.implements(release_slot)
    async def release_slot(self, input: Slot) -> Held:
        await self._ingress.release_slot(
            input.workflow_type, input.key, input.workflow_id, input.limit, org_id=_org()
        )
        return Held(held=False)
