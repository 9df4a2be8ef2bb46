"""Memory consolidation: what agents learned, kept as one note per org and project."""

from .consolidate import (
    MEMORY_AGENT,
    ORG_WORKFLOW,
    ConsolidateInput,
    ConsolidateOrgRequested,
    ConsolidateOutput,
    OrgRun,
    consolidate_memory,
    consolidate_org,
)

__all__ = [
    "MEMORY_AGENT",
    "ORG_WORKFLOW",
    "ConsolidateInput",
    "ConsolidateOrgRequested",
    "ConsolidateOutput",
    "OrgRun",
    "consolidate_memory",
    "consolidate_org",
]
