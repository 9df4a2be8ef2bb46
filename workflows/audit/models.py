"""The audit's models: what is asked, what each project's analysis found, and the state a long
audit carries across continue-as-new."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

import durable
from activities.linear.steps import IssueRef

FindingStatus = Literal["pending", "approved", "rejected", "expired"]
Severity = Literal["high", "medium", "low"]


class Finding(BaseModel):
    id: str  # F1, F2, ... across the audit: what `durable approve --item` names
    project: str
    title: str
    severity: Severity = "medium"
    detail: str = ""
    issue_ids: list[str] = []  # the Linear issues it is about
    status: FindingStatus = "pending"
    revisions: int = 0
    notes: str = ""  # the reviewer's last notes
    decided_by: str = ""


class ProjectAudit(BaseModel):
    """A child run's answer: one project's findings, or why its analysis failed."""

    project_id: str
    project: str
    status: Literal["analysed", "failed"]
    issues: int = 0
    findings: list[Finding] = []
    session_id: str = ""
    error: str = ""


class Published(BaseModel):
    finding: str
    issue: IssueRef


class AuditState(BaseModel):
    """What an audit has done so far; carried into the next execution by continue-as-new."""

    team_id: str
    projects: list[ProjectAudit]
    findings: list[Finding]
    review_issue: IssueRef
    review_deadline: datetime
    executions: int = 1
    published: list[Published] = []


class AuditParams(BaseModel):
    projects: list[str] = Field(
        default_factory=list, description="Project names or ids in scope; empty: all projects"
    )
    team: str = Field("", description="Team key or id the findings are filed in; empty: first")
    max_parallel: int = Field(3, ge=1, le=20, description="Projects analysed at once")
    approval_timeout: durable.DurationText = Field(
        "72h", description="How long the review may take in all"
    )
    max_revisions: int = Field(1, ge=0, le=5, description="Revisions per finding")
    recheck_after: durable.DurationText = Field(
        "7d", description="When to check whether findings were resolved"
    )
    runtime: str = Field("local")
    agent_timeout: durable.DurationText = Field("30m")
    # Carried across continue-as-new; ignored when an audit starts (its first execution).
    state: AuditState | None = None


class AuditRequested(durable.Event[AuditParams]):
    """Start a multi-stage audit (`durable send-event rensei/audit.requested -d '{}' --org ..`)."""

    type: ClassVar[str] = "rensei/audit.requested"


class ProjectAuditInput(BaseModel):
    project_id: str
    project: str
    runtime: str = "local"
    agent_timeout: durable.DurationText = "30m"


class AuditOutput(BaseModel):
    status: Literal["completed", "nothing-in-scope"]
    projects: list[ProjectAudit] = []
    findings: list[Finding] = []
    published: list[Published] = []
    resolved: list[str] = []  # identifiers of published issues resolved by the re-check
    unresolved: list[str] = []
    review_issue: str = ""
    executions: int = 1
