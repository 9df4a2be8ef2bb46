"""Memory consolidation tests run on the PM harness (tests/pm/conftest.py): the shipped
registry bound the way the composition root binds it, the local agent in subprocesses, the dev
server and PostgreSQL. Helpers to run agent sessions for real, to start consolidation runs, to
run the product's own worker process, and to hold a run's note write open."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

import durable
from activities.agents import AgentSessionRequested, SessionRequest
from adapters.temporal import TemporalDurableClient
from workflows.memory import ConsolidateInput, ConsolidateOutput, consolidate_memory

from ..linear.conftest import local_linear  # noqa: F401 (a fixture)
from ..pm.conftest import Pm, pm, product_worker  # noqa: F401 (pm: a fixture)

__all__ = ["Pm", "product_worker"]


def new_org() -> str:
    """An org of the test's own: the database is shared with the other tests' sessions."""
    return f"org-mem-{uuid.uuid4().hex[:8]}"


async def session(
    client: TemporalDurableClient, org: str, project: str, prompt: str, agent: str = "pm-x"
) -> str:
    """Run an agent session of `org` on `project` to its end (the local agent; its summary
    quotes `prompt`); its id."""
    receipt = await client.send_event(
        AgentSessionRequested(
            data=SessionRequest(prompt=prompt, project=project, agent_id=agent),
            tenancy=durable.Tenancy(org_id=org),
        )
    )
    (session_id,) = receipt.started
    done = await asyncio.wait_for(client.get(session_id).result(), 60)
    assert done.status == "completed", done
    return session_id


async def start(client: TemporalDurableClient, org: str | None) -> durable.RunHandle[Any]:
    """What `durable start rensei/memory.consolidate.run [--org ORG]` starts."""
    tenancy = durable.Tenancy(org_id=org) if org else None
    return await client.start(consolidate_memory, ConsolidateInput(), tenancy=tenancy)


async def consolidate(
    client: TemporalDurableClient, org: str | None, *, of: set[str] | None = None
) -> ConsolidateOutput:
    """A run to its end; for a run of no org, with the runs it started for the orgs `of`
    (their groups and counts added to its own)."""
    out: ConsolidateOutput = await asyncio.wait_for((await start(client, org)).result(), 90)
    return await with_org_runs(client, out, of or set())


async def with_org_runs(
    client: TemporalDurableClient, out: ConsolidateOutput, of: set[str]
) -> ConsolidateOutput:
    """`out` with the results of the runs it started for the orgs `of`, once they have ended.
    The database is shared: the nightly run also starts runs for other tests' orgs, whose
    sessions may follow those orgs' execution routes to pools that no longer have workers."""
    for started in out.started:
        if started.org_id not in of:
            continue
        run: ConsolidateOutput = await asyncio.wait_for(
            client.get(started.workflow_id).result(), 90
        )
        out = out.model_copy(
            update={
                "gathered": out.gathered + run.gathered,
                "counted": out.counted + run.counted,
                "groups": [*out.groups, *run.groups],
            }
        )
    return out


@asynccontextmanager
async def holding(
    pool: asyncpg.Pool, org: str, project: str, session_id: str
) -> AsyncIterator[None]:
    """Hold any note write that counts `session_id` open until the block ends: an uncommitted
    row for it makes the write's insert wait. Rolled back: nothing of it is kept."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute(
                "INSERT INTO memory_consolidated (session_id, org_id, project, write_key)"
                " VALUES ($1, $2, $3, 'held-by-the-test')",
                session_id,
                org,
                project,
            )
            yield
        finally:
            await tx.rollback()


async def writes_waiting(pool: asyncpg.Pool, count: int, timeout: float = 60.0) -> None:
    """Return once `count` note writes are waiting (on a held session or on another write)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid() AND (query LIKE '%INTO memory_consolidated%'"
            " OR query LIKE '%pg_advisory_xact_lock(hashtextextended(%')"
        )
        if waiting >= count:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{count} note write(s) never waited ({waiting} did)")
        await asyncio.sleep(0.1)
