"""Build a Temporal worker that runs every workflow and activity of a registry."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from durable import DurableWorkflow, Registry
from store import StepAudit

from ._activities import temporal_activity
from ._event_activities import EventActivities
from ._ingress import EventIngress
from ._interceptor import DurableInterceptor
from ._progress import SEARCH_ATTRIBUTES
from ._workflow_class import GENERATED_MODULE, class_name

log = logging.getLogger(__name__)

# Modules the sandbox shares with the host instead of re-importing per run: the interface
# (pure), this adapter's host side, and step implementations (only referenced by workflows).
SANDBOX_PASSTHROUGH = ("durable", "adapters.temporal.host", "activities", "store", "asyncpg")

# How often a running step's heartbeat reaches the server at most; bounds how long a
# cancellation takes to reach a running step.
HEARTBEAT_THROTTLE = timedelta(seconds=2)


class SearchAttributesMissing(RuntimeError):
    pass


def workflow_class(wf: DurableWorkflow[Any, Any]) -> type:
    """The Temporal workflow class of a durable workflow (its workflow type is `wf.id`)."""
    cls: type = getattr(importlib.import_module(GENERATED_MODULE), class_name(wf))
    return cls


def sandbox_runner(extra_passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(
        *SANDBOX_PASSTHROUGH, *extra_passthrough
    )
    return SandboxedWorkflowRunner(restrictions=restrictions)


def build_worker(
    client: Client,
    registry: Registry,
    task_queue: str,
    *,
    max_concurrent_activities: int | None = None,
    graceful_shutdown_timeout: timedelta = timedelta(seconds=30),
    extra_passthrough: Sequence[str] = (),
    identity: str | None = None,
    events: EventIngress | None = None,
    audit: StepAudit | None = None,
) -> Worker:
    """A worker for every workflow and implemented activity in `registry` on `task_queue`.

    On shutdown, running activities get `graceful_shutdown_timeout` to finish before they are
    cancelled. With `events`, it also runs the steps behind `wait_for_event` and `send_event`.
    With `audit`, every step attempt is written to the step audit before it reports.
    """
    if events is not None:
        registry = registry.merged(Registry())
        registry.bind(EventActivities(events))
    missing = registry.unimplemented()
    if missing:
        log.warning("activities declared but not implemented on this worker: %s", missing)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow_class(wf) for wf in registry.workflows],
        activities=[temporal_activity(a) for a in registry.activities],
        workflow_runner=sandbox_runner(extra_passthrough),
        max_concurrent_activities=max_concurrent_activities,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=graceful_shutdown_timeout,
        identity=identity,
        interceptors=[DurableInterceptor(audit)],
    )


async def ensure_search_attributes(client: Client, *, create: bool) -> None:
    """Check that the search attributes runs keep current are registered in the namespace.

    With `create`, register the missing ones (fine on a dev server; on a cluster the operator
    does it). Without, raise SearchAttributesMissing naming the command to run.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key for key in SEARCH_ATTRIBUTES if key.name not in listed.custom_attributes]
    if not missing:
        return
    if not create:
        commands = "; ".join(
            f"temporal operator search-attribute create --namespace {client.namespace} "
            f"--name {key.name} --type Keyword"
            for key in missing
        )
        raise SearchAttributesMissing(
            f"search attributes {[k.name for k in missing]} are not registered in namespace "
            f"{client.namespace!r}; run: {commands}"
        )
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in missing
                },
            )
        )
    except RPCError as err:
        raise SearchAttributesMissing(f"could not register search attributes: {err}") from err
