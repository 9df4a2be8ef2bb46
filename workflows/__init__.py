"""The workflows this product ships, written only against `durable`."""

from durable import Registry

from .events import ApprovalResolved
from .example import example, summarise


def registry() -> Registry:
    """Every shipped workflow and the activities that need no injected client."""
    from activities.example import compose, plan, research

    return Registry([example, summarise], [plan, research, compose], [ApprovalResolved])


__all__ = ["registry"]
