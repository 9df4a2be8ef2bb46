"""The one event ingress: store the event once, start what it triggers, resolve the waits it
satisfies by signal, and re-deliver what a crash left pending (a transactional outbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from durable import EventTrigger, Registry
from durable._events import Event, EventReceipt, check_size
from store import Delivery, EventStore, StoredEvent

from ._progress import start_options

log = logging.getLogger("durable.events")

EVENT_SIGNAL = "durable.event"


class EventDelivery(BaseModel):
    """The payload of the `durable.event` signal that resolves a wait.

    Attributes:
        step_id: The waiting step.
        event: `{"id": ..., "data": {...}, "received_at": ...}`.
    """

    step_id: str
    event: dict[str, Any]


class EventIngress:
    def __init__(
        self,
        client: Client,
        store: EventStore,
        registry: Registry,
        task_queue: str,
        *,
        search_attributes: bool = True,
    ) -> None:
        self._memo, self._search_attributes = start_options(search_attributes)
        self.client = client
        self.store = store
        self.registry = registry
        self.task_queue = task_queue

    def _triggered(self, event_type: str, event_id: str) -> list[tuple[str, str]]:
        return [
            (wf.id, f"{wf.id}:{event_id}")
            for wf in self.registry.workflows
            if isinstance(wf.trigger, EventTrigger) and wf.trigger.event == event_type
        ]

    async def send(self, event: Event[Any]) -> EventReceipt:
        check_size(event)
        new, pending = await self.store.ingest(
            event.id,
            event.type,
            event.data.model_dump(mode="json"),
            self._triggered(event.type, event.id),
        )
        receipt = EventReceipt(id=event.id, type=event.type, duplicate=not new)
        for delivery in pending:
            await self.deliver(delivery, receipt)
        return receipt

    async def deliver(self, delivery: Delivery, receipt: EventReceipt | None = None) -> str:
        stored = await self.store.get(delivery.event_id)
        assert stored is not None, "a delivery always refers to a stored event"
        try:
            state = await self._deliver(delivery, stored)
        except Exception as err:  # stays pending; the dispatcher tries again
            log.warning(
                "delivery failed, will retry",
                extra={"event_id": delivery.event_id, "error": str(err)},
            )
            await self.store.finish(delivery, "pending", str(err))
            return "pending"
        await self.store.finish(delivery, state)
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
            with contextlib.suppress(WorkflowAlreadyStartedError):  # a redelivery
                await self.client.start_workflow(
                    workflow.id,
                    stored.document(),
                    id=delivery.workflow_id,
                    task_queue=self.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    static_summary=f"{workflow.id}, started by event {stored.type} {stored.id}",
                    memo=self._memo,
                    search_attributes=self._search_attributes,
                )
            return "delivered"
        handle = self.client.get_workflow_handle(delivery.workflow_id)
        try:
            await handle.signal(
                EVENT_SIGNAL, EventDelivery(step_id=delivery.step_id, event=stored.document())
            )
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # the run has finished
                return "undeliverable"
            raise
        return "delivered"

    async def redeliver(self, older_than_seconds: float = 5.0) -> int:
        """Deliver what has stayed pending longer than `older_than_seconds`; returns how many."""
        stale = await self.store.stale(older_than_seconds)
        for delivery in stale:
            await self.deliver(delivery)
        return len(stale)

    async def run_dispatcher(self, every_seconds: float = 2.0) -> None:
        """Re-deliver forever; run it beside a worker."""
        while True:
            try:
                count = await self.redeliver()
                if count:
                    log.info("re-delivered pending events", extra={"count": count})
            except Exception:
                log.exception("event dispatcher pass failed")
            await asyncio.sleep(every_seconds)
