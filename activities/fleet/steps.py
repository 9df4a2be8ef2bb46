"""The route step of an agent session.

The project's execution route is read (a project with only legacy sandbox settings is given one
first); its pools are tried in order: preferred pools with live capacity, then allowed ones,
then the fallback, never a forbidden pool. Live capacity is the slots of the pool's online
workers registered for the project (capped by the pool's policy) less the sessions running
there. With none free the step fails with "waiting for capacity in pools ..." and is retried:
the wait shows in the Temporal UI as the step's last failure and in `durable session` as the
session's placement. An auth mode that needs the host's own login is placed on `local` pools
only; a route without one fails pre-flight, at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

import durable
from activities.agents.models import LOCAL_AUTH_MODES, AuthMode
from store import Capacity, FleetStore, NewSession, Pool, Route, SessionStore
from store import pool_task_queue as _queue

log = logging.getLogger("durable.fleet")

# How long a route waits between looks for capacity (it backs off up to this).
WAIT_RETRY = durable.RetryPolicy(
    max_attempts=0, initial_interval="1s", backoff=2.0, max_interval="10s"
)


class RouteSession(BaseModel):
    session_id: str
    project: str
    runtime: str
    prompt: str
    requested_by: str = ""
    agent_id: str = ""
    auth_mode: AuthMode = "api-key"
    avoid: list[str] = []  # pools to try last: a worker there was lost
    lost: bool = False  # the worker that claimed the session last was lost
    # When the session's own timeout is up: waiting for capacity ends there (None: never).
    deadline: datetime | None = None


class Routed(BaseModel):
    queue: str | None = None  # None: the run's own task queue (the project has no route)
    pool_id: str = ""
    pool_name: str = ""
    provider: str = ""


class WaitingForCapacity(Exception):
    """No pool the route allows has a free slot now; the step is retried."""


route_session = durable.declare_activity(
    "fleet.route-session", RouteSession, Routed, timeout="30s", retry=WAIT_RETRY
)


def _names(pools: list[Pool]) -> str:
    return ", ".join(f"{p.name} ({p.provider})" for p in pools) or "none"


def candidates(route: Route, pools: dict[str, Pool], auth_mode: str) -> list[Pool]:
    """The pools a session may use, in the order they are tried: preferred, allowed, then the
    fallback; forbidden pools never. Raises NonRetryableError (pre-flight) when the auth mode
    needs a `local` pool and the route offers none."""
    forbidden = set(route.forbidden)
    order = list(dict.fromkeys([*route.preferred, *route.allowed]))
    if route.fallback:
        order.append(route.fallback)
    usable = [pools[i] for i in dict.fromkeys(order) if i in pools and i not in forbidden]
    if not usable:
        raise durable.NonRetryableError(
            f"project {route.project_id!r}'s route offers no pool to run on (every pool it "
            "names is forbidden or gone)",
            kind="PreflightFailed",
        )
    if auth_mode in LOCAL_AUTH_MODES:
        local = [p for p in usable if p.provider == "local"]
        if not local:
            raise durable.NonRetryableError(
                f"auth mode {auth_mode!r} runs only on local pools, and project "
                f"{route.project_id!r}'s route offers none (it offers: {_names(usable)})",
                kind="PreflightFailed",
            )
        usable = local
    return usable


def choose(caps: list[Capacity], route: Route, avoid: set[str]) -> Capacity | None:
    """The first pool with a free slot: preferred and allowed before the fallback, and a pool
    just lost last of all."""
    listed = {*route.preferred, *route.allowed}

    def rank(cap: Capacity) -> tuple[bool, bool]:
        return (cap.pool.id in avoid, cap.pool.id not in listed)

    for cap in sorted(caps, key=rank):  # stable: the route's order within each rank
        if cap.free > 0:
            return cap
    return None


class FleetActivities:
    def __init__(
        self, fleet: FleetStore, sessions: SessionStore, *, heartbeat_grace: timedelta
    ) -> None:
        self._fleet = fleet
        self._sessions = sessions
        self._grace = heartbeat_grace

    @durable.implements(route_session)
    async def route_session(self, input: RouteSession) -> Routed:
        info = durable.activity_context().info
        org = info.tenancy.org_id
        await self._sessions.open(
            NewSession(
                session_id=input.session_id,
                run_id=info.run_id,
                runtime=input.runtime,
                prompt=input.prompt,
                requested_by=input.requested_by,
                org_id=org,
                project=input.project,
                agent_id=input.agent_id,
            )
        )
        route = await self._fleet.route(org, input.project) if input.project else None
        if route is None:
            await self._fleet.place_unrouted(input.session_id, "on the run's own queue", org_id=org)
            return Routed()
        await self._fleet.mark_offline(self._grace, org_id=org)
        pools = {p.id: p for p in await self._fleet.pools(org)}
        usable = candidates(route, pools, input.auth_mode)
        waiting = f"waiting for capacity in pools {', '.join(p.name for p in usable)}"
        chosen = await self._fleet.place(
            org,
            input.project,
            input.session_id,
            usable,
            lambda caps: choose(caps, route, set(input.avoid)),
            waiting,
            lost=input.lost,
        )
        if chosen is None:
            if input.deadline is not None and datetime.now(UTC) >= input.deadline:
                names = ", ".join(p.name for p in usable) or "none (the route allows no pool)"
                raise durable.NonRetryableError(
                    f"no capacity in pools {names} within the session's timeout (until "
                    f"{input.deadline.isoformat(timespec='seconds')})",
                    kind="NoCapacity",
                )
            raise WaitingForCapacity(waiting)
        pool = chosen.pool
        log.info(
            "session routed",
            extra={"session": input.session_id, "pool": pool.name, "free": chosen.free},
        )
        return Routed(
            queue=_queue(pool.id, input.project),
            pool_id=pool.id,
            pool_name=pool.name,
            provider=pool.provider,
        )
