"""Backlog triage end to end: the real local Linear, the shipped local agent in a subprocess,
the dev server and PostgreSQL."""

from __future__ import annotations

from typing import Any

from activities.linear.local_server import LocalLinear
from workflows.pm.backlog_triage import BacklogTriageParams, BacklogTriageRequested

from .conftest import Pm, approve, waiting_at


def issue(linear: LocalLinear, identifier: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        i for i in linear.state()["issues"] if i["identifier"] == identifier
    ]
    assert found, identifier
    return found[0]


async def test_approved_triage_is_applied_to_linear(pm: Pm, local_linear: LocalLinear) -> None:
    async with pm.running(local_linear) as client:
        handle = await pm.trigger(client, BacklogTriageRequested(data=BacklogTriageParams()))
        await waiting_at(pm, handle.id, "await-approval#1")
        await approve(client, handle.id, by="ada")
        out = await handle.result()
    print(out)
    assert out.status == "approved"
    assert out.applied
