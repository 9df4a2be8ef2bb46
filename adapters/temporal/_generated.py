"""Temporal workflow classes, one per `DurableWorkflow`, made on first access.

Not passed through the sandbox: inside it, the first access re-imports the user's workflow
module under the sandbox's restrictions (see `host/_workflow_class.py`).
"""

from __future__ import annotations

from adapters.temporal.host._workflow_class import build_class, locate


def __getattr__(name: str) -> type:
    cls = build_class(locate(name), name)
    globals()[name] = cls
    return cls
