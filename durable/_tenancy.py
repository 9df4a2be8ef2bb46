"""Who a run belongs to: org, workspace, project. Set when a run starts (by the caller, or by
the event that triggered it), inherited by its steps and child runs, and kept across
continue-as-new. Steps read it; the step audit and the UI's search attributes record it."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

_ID = re.compile(r"^[A-Za-z0-9._:-]*$")


class Tenancy(BaseModel):
    """Attributes:
    org_id: The organisation; row-level security on the step audit is keyed by it. Empty:
        the run belongs to no org (system runs such as an unscoped cron).
    workspace_id, project_id: Narrower scopes, recorded and filterable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str = Field(default="", max_length=200, pattern=_ID.pattern)
    workspace_id: str = Field(default="", max_length=200, pattern=_ID.pattern)
    project_id: str = Field(default="", max_length=200, pattern=_ID.pattern)


NO_TENANCY = Tenancy()
