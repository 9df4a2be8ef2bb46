"""The one event ingress: store the event once, start what it triggers, resolve the waits it
satisfies by signal, and re-deliver what a crash left pending (a transactional outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durable import (
    DurableWorkflow,
    EventError,
    EventTrigger,
    Registry,
    Tenancy,
    validation_message,
)
from durable._events import Event, EventNotAcknowledged, EventReceipt, check_size
from durable._limits import key_of
from store import (
    CONNECTION_ERRORS,
    Delivery,
    EventStore,
    StartRequest,
    StoredEvent,
    ThrottleKey,
    describe_connection_error,
)

from ._progress import start_details, start_options

log = logging.getLogger("durable.events")

EVENT_SIGNAL = "durable.event"
# Picks the task queue of a run an event starts: (workflow id, event document) -> task queue,
# or None for the ingress's own. It must give the same answer for the same event (redeliveries
# ask again).
StartRoute = Callable[[str, dict[str, Any]], str | None]
# How often the dispatcher asks whether a run holding a concurrency slot still runs.
SLOT_CHECK_SECONDS = 30.0


class EventDelivery(BaseModel):
    """The payload of the `durable.event` signal that resolves a wait.

    Attributes:
        step_id: The waiting step.
        event: `{"id": ..., "data": {...}, "received_at": ...}`.
        run_id: The execution (Temporal run id) whose wait it resolves; an execution ignores a
            delivery for another (its predecessor, before a continue-as-new). Empty: any.
    """

    step_id: str
    event: dict[str, Any]
    run_id: str = ""


class EventIngress:
    def __init__(
        self,
        client: Client,
        store: EventStore,
        registry: Registry,
        task_queue: str,
        *,
        search_attributes: bool = True,
        route: StartRoute | None = None,
    ) -> None:
        self._search_attributes_on = search_attributes
        self.client = client
        self.store = store
        self.registry = registry
        self.task_queue = task_queue
        self.route = route

    def _started_by(self, event_type: str) -> list[DurableWorkflow[Any, Any]]:
        """The workflows whose trigger is `event_type`."""
        return [
            wf
            for wf in self.registry.workflows
            if isinstance(wf.trigger, EventTrigger) and wf.trigger.event == event_type
        ]

    def _triggered(self, event_type: str, document: dict[str, Any]) -> list[StartRequest]:
        """The starts `event` (whose JSON form is `document`) triggers, with their limits."""
        return [
            StartRequest(
                wf.id,
                f"{wf.id}:{document['id']}",
                _throttle_key(wf, document),
                (key_of(document, wf.concurrency.key), wf.concurrency.limit)
                if wf.concurrency
                else None,
            )
            for wf in self._started_by(event_type)
        ]

    def _check_starts(self, event_type: str, document: dict[str, Any]) -> None:
        """Refuse an event that would start a run its workflow's input model refuses, before
        anything is stored: a run that cannot work never exists."""
        for wf in self._started_by(event_type):
            try:
                wf.input_type.model_validate(document)
            except ValidationError as err:
                raise EventError(
                    f"event {event_type!r} cannot start {wf.id}: {validation_message(err)}"
                ) from None

    async def send(self, event: Event[Any]) -> EventReceipt:
        """Store the event, then make its deliveries. Raises EventNotAcknowledged if the store
        cannot be reached; once the event is committed, a delivery that fails is left to the
        dispatcher and the send still succeeds."""
        check_size(event)
        document = event.model_dump(mode="json")
        self._check_starts(event.type, document)
        try:
            ingested = await self.store.ingest(
                event.id,
                event.type,
                document["data"],
                self._triggered(event.type, document),
                tenancy=event.tenancy,
            )
        except CONNECTION_ERRORS as err:
            reason = describe_connection_error(err)
            raise EventNotAcknowledged(event.id, event.type, reason) from err
        receipt = EventReceipt(
            id=event.id, type=event.type, duplicate=not ingested.new, throttled=ingested.throttled
        )
        for delivery in ingested.pending:
            await self.deliver(delivery, receipt)
        return receipt

    async def take(
        self, event_type: str, document: dict[str, Any], workflow_id: str, run_id: str
    ) -> tuple[str | None, dict[str, Any] | None, bool]:
        """Store an event a run was handed directly (by Update or signal) and make its
        deliveries, except the one to that run, which is recorded as made: the run takes the
        event itself. Returns the run's step the event resolved (None: none), the event as
        stored, and whether its id was stored before. `document` is the event's JSON form,
        already checked by the run against its wait. Connection errors propagate (the step
        retries until the store is back)."""
        tenancy = Tenancy.model_validate(document["tenancy"])
        ingested = await self.store.ingest(
            document["id"],
            event_type,
            document["data"],
            self._triggered(event_type, document),
            tenancy=tenancy,
        )
        step_id: str | None = None
        for delivery in ingested.pending:
            mine = delivery.workflow_id == workflow_id and delivery.run_id in (run_id, "")
            if delivery.kind == "signal" and mine and step_id is None:
                await self.store.finish(delivery, "delivered")
                step_id = delivery.step_id
            else:
                await self.deliver(delivery)
        stored = await self.store.get(document["id"], org_id=tenancy.org_id)
        return step_id, stored.document() if stored else None, not ingested.new

    async def deliver(self, delivery: Delivery, receipt: EventReceipt | None = None) -> str:
        """Make one delivery and record its outcome; never raises for a failure the dispatcher
        can retry (it stays pending)."""
        try:
            stored = await self.store.get(delivery.event_id, org_id=delivery.org_id)
        except CONNECTION_ERRORS as err:
            log.warning("delivery deferred: the event store is unreachable: %s", err)
            if receipt is not None:
                receipt.pending.append(delivery.workflow_id)
            return "pending"
        assert stored is not None, "a delivery always refers to a stored event"
        try:
            state = await self._deliver(delivery, stored)
        except Exception as err:  # stays pending; the dispatcher tries again
            log.warning(
                "delivery failed, will retry",
                extra={"event_id": delivery.event_id, "error": str(err)},
            )
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.store.finish(delivery, "pending", str(err))
            if receipt is not None:
                receipt.pending.append(delivery.workflow_id)
            return "pending"
        try:
            await self.store.finish(delivery, state)
        except CONNECTION_ERRORS as err:
            # Made but not recorded: the dispatcher makes it again, and a run that already
            # has it ignores it, or is found to have had it (see _signal).
            log.warning("delivery made but not recorded, will be re-checked: %s", err)
        if receipt is not None:
            target = {
                ("start", "delivered"): receipt.started,
                ("signal", "delivered"): receipt.delivered,
            }.get((delivery.kind, state), receipt.undeliverable)
            target.append(delivery.workflow_id)
        return state

    async def _deliver(self, delivery: Delivery, stored: StoredEvent) -> str:
        if delivery.kind == "start":
            workflow = self.registry.workflow(delivery.workflow_type)
            memo, search_attributes = start_options(
                self._search_attributes_on, stored.tenancy, f"event:{stored.type}"
            )
            routed = self.route(workflow.id, stored.document()) if self.route else None
            with contextlib.suppress(WorkflowAlreadyStartedError):  # a redelivery
                await self.client.start_workflow(
                    workflow.id,
                    stored.document(),
                    id=delivery.workflow_id,
                    task_queue=routed or self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    start_delay=(
                        timedelta(seconds=delivery.delay_seconds)
                        if delivery.delay_seconds > 0
                        else None
                    ),
                    static_summary=f"{workflow.id}, started by event {stored.type} {stored.id}",
                    static_details=start_details(
                        stored.tenancy, f"event:{stored.type} (id {stored.id})"
                    ),
                    memo=memo,
                    search_attributes=search_attributes,
                )
            return "delivered"
        handle = self.client.get_workflow_handle(delivery.workflow_id)
        try:
            await handle.signal(
                EVENT_SIGNAL,
                EventDelivery(
                    step_id=delivery.step_id, event=stored.document(), run_id=delivery.run_id
                ),
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            # The run has finished: with this event, if an earlier attempt delivered it but
            # could not record that (the store went away), or without it.
            if await self._was_signalled(delivery):
                return "delivered"
            return "undeliverable"
        return "delivered"

    async def _was_signalled(self, delivery: Delivery) -> bool:
        """Whether the run's history holds this event's signal to this step."""
        handle = self.client.get_workflow_handle(delivery.workflow_id)
        converter = self.client.data_converter
        try:
            async for event in handle.fetch_history_events():
                attrs = event.workflow_execution_signaled_event_attributes
                if not event.HasField("workflow_execution_signaled_event_attributes"):
                    continue
                if attrs.signal_name != EVENT_SIGNAL or not attrs.input.payloads:
                    continue
                (sent,) = await converter.decode(list(attrs.input.payloads), [EventDelivery])
                if sent.step_id == delivery.step_id and sent.event.get("id") == delivery.event_id:
                    return True
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # the history is gone (retention)
                return False
            raise
        return False

    async def redeliver(self, older_than_seconds: float = 5.0) -> int:
        """Deliver what has stayed pending longer than `older_than_seconds`; returns how many."""
        stale = await self.store.stale(older_than_seconds)
        for delivery in stale:
            await self.deliver(delivery)
        return len(stale)

    async def release_slot(
        self,
        workflow_type: str,
        key: str,
        workflow_id: str,
        limit: int | None = None,
        *,
        org_id: str,
    ) -> int:
        """Leave a concurrency slot and wake the runs it frees; returns how many woke."""
        if limit is None:
            declared = self.registry.workflow(workflow_type).concurrency
            limit = declared.limit if declared else 1
        pending = await self.store.release_slot(
            workflow_type, key, limit, workflow_id, org_id=org_id
        )
        for delivery in pending:
            await self.deliver(delivery)
        return len(pending)

    async def reclaim_slots(self, older_than_seconds: float = SLOT_CHECK_SECONDS) -> int:
        """Release the concurrency slots of runs that ended without releasing them
        (terminated, timed out, deleted); returns how many."""
        freed = 0
        for workflow_type, key, workflow_id, org_id in await self.store.slots_to_check(
            older_than_seconds
        ):
            try:
                described = await self.client.get_workflow_handle(workflow_id).describe()
                running = described.status == WorkflowExecutionStatus.RUNNING
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                running = False
            if not running:
                log.info(
                    "released the concurrency slot of an ended run",
                    extra={"workflow_id": workflow_id, "workflow_type": workflow_type},
                )
                await self.release_slot(workflow_type, key, workflow_id, org_id=org_id)
                freed += 1
        return freed

    async def run_dispatcher(self, every_seconds: float = 2.0) -> None:
        """Re-deliver, and reclaim abandoned concurrency slots, forever; run it beside a
        worker."""
        while True:
            try:
                count = await self.redeliver()
                if count:
                    log.info("re-delivered pending events", extra={"count": count})
                await self.reclaim_slots()
            except Exception:
                log.exception("event dispatcher pass failed")
            await asyncio.sleep(every_seconds)


def _throttle_key(wf: DurableWorkflow[Any, Any], event: dict[str, Any]) -> ThrottleKey | None:
    throttle = wf.throttle
    if throttle is None:
        return None
    return ThrottleKey(
        key=key_of(event, throttle.key),
        limit=throttle.limit,
        period_seconds=throttle.window.total_seconds(),
        skip=throttle.excess == "skip",
    )
