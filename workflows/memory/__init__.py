"""Memory consolidation: what agents learned, kept as one note per org and project."""

from .consolidate import (
    MEMORY_AGENT,
    ConsolidateInput,
    ConsolidateOutput,
    consolidate_memory,
)

__all__ = [
    "MEMORY_AGENT",
    "ConsolidateInput",
    "ConsolidateOutput",
    "consolidate_memory",
]
