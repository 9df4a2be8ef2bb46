"""Audit workflows: a multi-stage audit of projects (see `audit.py`)."""

from typing import Any

import durable

from .audit import audit, audit_project
from .models import AuditOutput, AuditParams, AuditRequested, Finding, ProjectAudit

AUDIT_WORKFLOWS: list[durable.DurableWorkflow[Any, Any]] = [audit, audit_project]
AUDIT_EVENTS: list[type[durable.Event[Any]]] = [AuditRequested]

__all__ = [
    "AUDIT_EVENTS",
    "AUDIT_WORKFLOWS",
    "AuditOutput",
    "AuditParams",
    "AuditRequested",
    "Finding",
    "ProjectAudit",
    "audit",
    "audit_project",
]
