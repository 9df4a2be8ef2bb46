"""What a run reports about itself: kept in the workflow, served by a query, mirrored into
search attributes and the UI's current details."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from durable import Event, InputValidationError, RunStatus, Tenancy, validation_message
from durable._tenancy import NO_TENANCY

DESCRIBE_QUERY = "durable.describe"

# Registered on the dev server at start; on a real cluster the operator registers them, as
# Keyword attributes (see README):
#   temporal operator search-attribute create --name DurableStatus --type Keyword  (and so on)
STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableStatus")
STEP_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableStep")
WAITING_ON_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableWaitingOn")
ORG_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableOrgId")
WORKSPACE_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableWorkspaceId")
PROJECT_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableProjectId")
TRIGGER_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableTrigger")
SEARCH_ATTRIBUTES = (
    STATUS_ATTRIBUTE,
    STEP_ATTRIBUTE,
    WAITING_ON_ATTRIBUTE,
    ORG_ATTRIBUTE,
    WORKSPACE_ATTRIBUTE,
    PROJECT_ATTRIBUTE,
    TRIGGER_ATTRIBUTE,
)
# Memo key that turns search-attribute upserts off for one run (and its children), for servers
# without custom search attributes such as the time-skipping test server. Fixed at start, so
# replay takes the same path.
SEARCH_ATTRIBUTES_MEMO = "durable.search-attributes"
# The first execution's start (ISO 8601), carried across continue-as-new.
STARTED_MEMO = "durable.started-at"
# The run's Tenancy (org, workspace, project), set at start, inherited by children.
TENANCY_MEMO = "durable.tenancy"


class RunProgress(BaseModel):
    """The answer to the `durable.describe` query."""

    status: RunStatus = RunStatus.RUNNING
    current_steps: list[str] = []
    waiting_on: str | None = None
    completed_steps: int = 0
    resolve_with: list[str] = []  # the command that resolves each open wait
    ignored: list[str] = []  # events handed to the run that it could not use, and why


# What a Temporal user passes to give a run its org, as `temporal workflow start` spells it.
TENANCY_HINT = (
    "--search-attribute 'DurableOrgId=\"acme\"' (and DurableWorkspaceId, DurableProjectId)"
)


def run_scope() -> dict[str, Any]:
    """The run's tenancy as given at start (not yet validated): the memo `durable start` and
    the event ingress set, else the DurableOrgId, DurableWorkspaceId and DurableProjectId
    search attributes a Temporal user sets."""
    scope = workflow.memo_value(TENANCY_MEMO, None, type_hint=dict)
    if scope:
        return dict(scope)
    attrs = workflow.info().typed_search_attributes
    return {
        "org_id": attrs.get(ORG_ATTRIBUTE) or "",
        "workspace_id": attrs.get(WORKSPACE_ATTRIBUTE) or "",
        "project_id": attrs.get(PROJECT_ATTRIBUTE) or "",
    }


def start_tenancy(arg: BaseModel) -> Tenancy:
    """The tenancy a run was started with: the memo `durable start` and the event ingress set,
    else the DurableOrgId, DurableWorkspaceId and DurableProjectId search attributes. An input
    event whose own `tenancy` says otherwise is refused rather than ignored."""
    try:
        tenancy = Tenancy.model_validate(run_scope())
    except ValidationError as err:
        raise InputValidationError("the run's tenancy", validation_message(err)) from None
    named = arg.tenancy if isinstance(arg, Event) else None
    if named is not None and named.org_id != tenancy.org_id:
        started = f"for org {tenancy.org_id!r}" if tenancy.org_id else "for no org"
        raise InputValidationError(
            "the run's tenancy",
            f"the input event names org {named.org_id!r} but the run was started {started}; "
            f"a Temporal start gives the org with "
            f"{TENANCY_HINT.replace('acme', named.org_id)}",
        )
    return tenancy


def start_options(
    search_attributes: bool, tenancy: Tenancy | None = None, trigger: str = "manual"
) -> tuple[dict[str, Any], TypedSearchAttributes]:
    """Memo and search attributes for starting a run: it begins "running", with its tenancy
    and trigger filterable in the UI; or, where the server has no custom search attributes,
    with upserts turned off for the whole run. The memo carries the tenancy either way."""
    memo: dict[str, Any] = {}
    if tenancy is not None and tenancy != NO_TENANCY:
        memo[TENANCY_MEMO] = tenancy.model_dump()
    if not search_attributes:
        memo[SEARCH_ATTRIBUTES_MEMO] = False
        return memo, TypedSearchAttributes.empty
    scope = tenancy or NO_TENANCY
    pairs = [
        SearchAttributePair(STATUS_ATTRIBUTE, RunStatus.RUNNING.value),
        SearchAttributePair(TRIGGER_ATTRIBUTE, trigger),
    ]
    for key, value in (
        (ORG_ATTRIBUTE, scope.org_id),
        (WORKSPACE_ATTRIBUTE, scope.workspace_id),
        (PROJECT_ATTRIBUTE, scope.project_id),
    ):
        if value:
            pairs.append(SearchAttributePair(key, value))
    return memo, TypedSearchAttributes(pairs)


def start_details(tenancy: Tenancy | None, trigger: str) -> str:
    """The static details a run shows in the UI: who it runs for and what started it."""
    scope = tenancy or NO_TENANCY
    parts = [
        f"{label}: {value}"
        for label, value in (
            ("org", scope.org_id),
            ("workspace", scope.workspace_id),
            ("project", scope.project_id),
        )
        if value
    ]
    return "\n".join([f"trigger: {trigger}", *parts])
