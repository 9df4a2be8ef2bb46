"""Replay recorded histories against the current code: the check that a change is safe for
runs already in flight."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from durable import Registry

from ._converter import data_converter
from ._interceptor import DurableInterceptor
from ._worker import sandbox_runner, workflow_class


async def replay(
    registry: Registry, histories: Iterable[WorkflowHistory], extra_passthrough: Sequence[str] = ()
) -> None:
    """Replay each history with the registry's workflows.

    Raises:
        temporalio.workflow.NondeterminismError: the code no longer takes the recorded path.
    """
    replayer = Replayer(
        workflows=[workflow_class(wf) for wf in registry.workflows],
        data_converter=data_converter(),
        workflow_runner=sandbox_runner(extra_passthrough),
        interceptors=[DurableInterceptor()],
    )
    for history in histories:
        await replayer.replay_workflow(history)


def load_history(json_text: str, run_id: str = "replayed") -> WorkflowHistory:
    return WorkflowHistory.from_json(run_id, json_text)
