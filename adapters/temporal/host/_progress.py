"""What a run reports about itself: kept in the workflow, served by a query, mirrored into
search attributes and the UI's current details."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from durable import RunStatus

DESCRIBE_QUERY = "durable.describe"

# Registered on the dev server at start; on a real cluster run (see README):
#   temporal operator search-attribute create --name DurableStatus --type Keyword
#   temporal operator search-attribute create --name DurableStep --type Keyword
STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableStatus")
STEP_ATTRIBUTE = SearchAttributeKey.for_keyword("DurableStep")
SEARCH_ATTRIBUTES = (STATUS_ATTRIBUTE, STEP_ATTRIBUTE)
# Memo key that turns search-attribute upserts off for one run (and its children), for servers
# without custom search attributes such as the time-skipping test server. Fixed at start, so
# replay takes the same path.
SEARCH_ATTRIBUTES_MEMO = "durable.search-attributes"
# The first execution's start (ISO 8601), carried across continue-as-new.
STARTED_MEMO = "durable.started-at"


class RunProgress(BaseModel):
    """The answer to the `durable.describe` query."""

    status: RunStatus = RunStatus.RUNNING
    current_steps: list[str] = []
    waiting_on: str | None = None
    completed_steps: int = 0


def start_options(search_attributes: bool) -> tuple[dict[str, bool], TypedSearchAttributes]:
    """Memo and search attributes for starting a run: it begins "running", or, where the server
    has no custom search attributes, with upserts turned off for the whole run."""
    if search_attributes:
        running = SearchAttributePair(STATUS_ATTRIBUTE, RunStatus.RUNNING.value)
        return {}, TypedSearchAttributes([running])
    return {SEARCH_ATTRIBUTES_MEMO: False}, TypedSearchAttributes.empty
