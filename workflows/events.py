"""Events the shipped workflows share."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, BaseModel, Field

import durable


class Approval(BaseModel):
    # The workflow id of the run that waits, e.g. where={"data.workflow_id": ctx.workflow_id}.
    # Approvals recorded before the rename said `run_id` for it; they still read.
    workflow_id: str = Field(validation_alias=AliasChoices("workflow_id", "run_id"))
    decision: Literal["approve", "reject", "revise"]
    notes: str = ""
    by: str = ""  # who decided: through the API, the principal (`key:<name>`, `oidc:<sub>`)
    # How the decision came: `api` (set by the HTTP API from a verified credential), `cli`
    # (`durable approve` with direct database access), or '' (a signal sent straight to
    # Temporal, which Temporal itself authorized).
    via: str = ""
    # Which item of the run's request this answers (an audit asks per finding, e.g. "F2");
    # empty: the request as a whole.
    item: str = ""


class ApprovalResolved(durable.Event[Approval]):
    """A human answered a run's request for approval (`durable approve WORKFLOW_ID`)."""

    type: ClassVar[str] = "rensei/approval.resolved"
