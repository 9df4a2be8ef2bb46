"""Where the route step places a session, against PostgreSQL with registered workers: the order
(preferred, allowed, fallback), a pool's `max_sessions` across projects, forbidden pools, routes
that offer nothing, a lost worker, and slots that must not stay taken forever."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

import durable
from activities.fleet.steps import candidates, choose
from store import FleetError, FleetStore, NewSession, Registration, SessionStore

WAITING = "waiting"


class Org:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.db = pool
        self.id = f"org-{uuid.uuid4().hex[:8]}"
        self.store = FleetStore(pool)
        self.sessions = SessionStore(pool)

    async def worker(self, project: str, pool: str, slots: int) -> str:
        chosen = await self.store.pool_named(self.id, pool)
        token_id = await self.store.add_registration_token(
            self.id, project, uuid.uuid4().hex, "rsp_live_x", timedelta(days=1), pool_id=chosen.id
        )
        registration = Registration(token_id, self.id, project, "rsp_live_x", datetime.now(UTC), 1)
        return await self.store.register_worker(registration, chosen.id, max_concurrency=slots)

    async def place(
        self,
        project: str,
        *,
        avoid: frozenset[str] = frozenset(),
        lost: bool = False,
        auth_mode: str = "api-key",
        session_id: str | None = None,
    ) -> str:
        """Place a (new) session of `project`; returns the pool's name or WAITING."""
        session_id = session_id or f"s-{uuid.uuid4().hex[:8]}"
        await self.sessions.open(
            NewSession(session_id, "run", "local", "p", org_id=self.id, project=project)
        )
        route = await self.store.route(self.id, project)
        assert route is not None
        pools = {p.id: p for p in await self.store.pools(self.id)}
        usable = candidates(route, pools, auth_mode)
        chosen = await self.store.place(
            self.id,
            project,
            session_id,
            usable,
            lambda caps: choose(caps, route, set(avoid)),
            WAITING,
            lost=lost,
        )
        return chosen.pool.name if chosen else WAITING

    async def pool_id(self, name: str) -> str:
        return (await self.store.pool_named(self.id, name)).id


@pytest.fixture
async def org(pool: asyncpg.Pool) -> Org:
    org = Org(pool)
    await org.store.create_pool(org.id, "near", "local")
    await org.store.create_pool(org.id, "far", "local")
    await org.store.create_pool(org.id, "cloud", "e2b", capacity={"max_sessions": 1})
    return org


async def test_preferred_then_allowed_then_fallback_then_wait(org: Org) -> None:
    await org.store.set_route(
        org.id, "atlas", preferred=["near"], allowed=["far"], fallback="cloud"
    )
    for name in ("near", "far", "cloud"):
        await org.worker("atlas", name, 1)
    assert [await org.place("atlas") for _ in range(4)] == ["near", "far", "cloud", WAITING]


async def test_max_sessions_counts_every_project_on_the_pool(org: Org) -> None:
    for project in ("atlas", "borealis"):
        await org.store.set_route(org.id, project, preferred=["cloud"])
        await org.worker(project, "cloud", 5)
    assert await org.place("borealis") == "cloud"
    assert await org.place("atlas") == WAITING, "cloud's one session is borealis's"


async def test_a_forbidden_pool_is_never_used_even_with_free_slots(org: Org) -> None:
    await org.store.set_route(org.id, "atlas", allowed=["far"], forbidden=["near"])
    await org.worker("atlas", "near", 10)
    assert [await org.place("atlas") for _ in range(3)] == [WAITING] * 3
    await org.worker("atlas", "far", 1)
    assert await org.place("atlas") == "far"


async def test_routes_that_offer_nothing_are_refused_or_fail_pre_flight(org: Org) -> None:
    with pytest.raises(FleetError, match="at least one preferred, allowed or fallback pool"):
        await org.store.set_route(org.id, "atlas", forbidden=["near"])
    with pytest.raises(FleetError, match="cannot be both forbidden and used: near"):
        await org.store.set_route(org.id, "atlas", preferred=["near"], forbidden=["near"])
    await org.store.set_route(org.id, "atlas", preferred=["cloud"])
    with pytest.raises(durable.NonRetryableError, match="auth mode 'local' runs only on local"):
        await org.place("atlas", auth_mode="local")
    # A pool the route names that is gone leaves nothing to run on.
    await org.db.execute(
        "UPDATE execution_routes SET preferred = '{}', allowed = ARRAY[$3::uuid]"
        " WHERE org_id = $1 AND project_id = $2",
        org.id,
        "atlas",
        str(uuid.uuid4()),
    )
    with pytest.raises(durable.NonRetryableError, match="offers no pool to run on"):
        await org.place("atlas")


async def test_a_lost_worker_is_offline_at_once_and_its_pool_tried_last(org: Org) -> None:
    await org.store.set_route(org.id, "atlas", preferred=["near"], allowed=["far"])
    near = await org.worker("atlas", "near", 2)
    await org.worker("atlas", "far", 2)
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    assert await org.place("atlas", session_id=session_id) == "near"
    worker = await org.store.worker(near, org_id=org.id)
    assert worker is not None
    assert await org.store.claim_session(session_id, worker) == 1
    # The run saw the worker lost: its pool goes last, and the worker offline, at once.
    avoid = frozenset({await org.pool_id("near")})
    assert await org.place("atlas", session_id=session_id, avoid=avoid, lost=True) == "far"
    assert (await org.store.worker(near, org_id=org.id)).status == "offline"  # type: ignore[union-attr]
    # With the other pool full, the avoided pool is still used rather than waiting, when it has
    # a live worker again (its heartbeat brings it back).
    assert await org.store.heartbeat(near, [], org_id=org.id)
    assert await org.place("atlas", avoid=avoid) == "far"
    assert await org.place("atlas", avoid=avoid) == "near"


async def test_slots_of_sessions_no_worker_runs_are_given_back(org: Org) -> None:
    await org.store.set_route(org.id, "atlas", preferred=["near"])
    near = await org.worker("atlas", "near", 1)
    unclaimed = f"s-{uuid.uuid4().hex[:8]}"
    assert await org.place("atlas", session_id=unclaimed) == "near"
    assert await org.place("atlas") == WAITING
    # Placed but never picked up for longer than its run waits on the queue: it stops counting.
    await org.db.execute(
        "UPDATE agent_sessions SET placed_at = placed_at - interval '3 minutes'"
        " WHERE session_id = $1",
        unclaimed,
    )
    claimed = f"s-{uuid.uuid4().hex[:8]}"
    assert await org.place("atlas", session_id=claimed) == "near"
    worker = await org.store.worker(near, org_id=org.id)
    assert worker is not None and await org.store.claim_session(claimed, worker) == 1
    assert await org.place("atlas") == WAITING
    # Claimed, but the worker's heartbeats say it no longer runs it (its run was terminated):
    # a heartbeat that lists it keeps it, one that does not (after it settled) releases its
    # slot, and one that lists it again takes the slot back.
    settle = timedelta(seconds=0)
    assert await org.store.heartbeat(near, [claimed], org_id=org.id, settle=settle)
    assert await org.place("atlas") == WAITING
    assert await org.store.heartbeat(near, [], org_id=org.id, settle=settle)
    released = await org.sessions.get(claimed, org_id=org.id)
    assert released is not None and released.worker_id == near and released.pool == "near"
    assert released.placement == f"running on pool near, worker {near}", "only the slot is freed"
    taker = f"s-{uuid.uuid4().hex[:8]}"
    assert await org.place("atlas", session_id=taker) == "near"
    assert await org.store.heartbeat(near, [claimed], org_id=org.id, settle=settle)
    assert await org.place("atlas") == WAITING, "near's slot is taken twice over now"
    # A heartbeat that does not say what runs releases nothing.
    assert await org.store.heartbeat(near, None, org_id=org.id, settle=settle)
    assert await org.place("atlas") == WAITING


async def test_a_gone_worker_s_sessions_do_not_hold_its_pool(org: Org) -> None:
    await org.store.set_route(org.id, "atlas", preferred=["cloud"])
    gone = await org.worker("atlas", "cloud", 1)
    session_id = f"s-{uuid.uuid4().hex[:8]}"
    assert await org.place("atlas", session_id=session_id) == "cloud"
    worker = await org.store.worker(gone, org_id=org.id)
    assert worker is not None and await org.store.claim_session(session_id, worker) == 1
    await org.worker("atlas", "cloud", 1)  # it came back under a new id, as a restart does
    assert await org.place("atlas") == WAITING, "cloud's max_sessions is 1, and gone holds it"
    assert await org.store.deregister(gone, org_id=org.id)
    assert await org.place("atlas") == "cloud"
