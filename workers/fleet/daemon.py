"""The worker host daemon (`durable fleet worker`).

It registers with its registration token, then runs a Temporal worker on its pool's task queue
(for its project) with `--max-concurrency` activity slots, and sends its runtime JWT to
Temporal as `authorization: Bearer ...` gRPC metadata. Beside the worker it heartbeats every
`heartbeatSeconds` (30 s by default; the platform marks a worker silent past the grace period
offline) and refreshes its JWT when two thirds of its life have passed; a refresh the platform
refuses (the registration was revoked) stops the daemon. On SIGTERM or Ctrl-C it lets running
sessions finish within the graceful-shutdown window, then deregisters.

The sessions it runs write their progress, transcript and result through the platform API with
the runtime JWT (`/api/sessions/{id}/claim|progress|output`): a fleet worker needs no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import platform
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, SecretStr

from activities.agents import AgentActivities, run_agent
from activities.agents.models import AgentRan, RunAgent
from adapters.temporal import build_worker
from durable import Registry
from store import NewSession

from ..runtime import TemporalUnreachable, agent_runtimes, connect_temporal
from ..settings import Settings

log = logging.getLogger("durable.fleet.daemon")

VERSION = "0.8.0"
REFRESH_AT = 2 / 3  # of the runtime JWT's life


class DaemonStopped(Exception):
    """The daemon cannot go on (refused registration, revoked registration); says why."""


class RefreshFailed(Exception):
    """The platform could not refresh the JWT now (it answered 5xx); try again."""


class Pool(BaseModel):
    id: str
    name: str
    provider: str


class Registered(BaseModel):
    worker_id: str = Field(alias="workerId")
    runtime_jwt: SecretStr = Field(alias="runtimeJwt")
    expires_at: datetime = Field(alias="expiresAt")
    org: str
    project: str
    pool: Pool
    task_queue: str = Field(alias="taskQueue")
    heartbeat_seconds: float = Field(alias="heartbeatSeconds")


@dataclass
class DaemonConfig:
    api: str
    token: SecretStr
    max_concurrency: int = 4
    capabilities: list[str] = field(default_factory=lambda: ["local"])
    hostname: str = field(default_factory=platform.node)
    heartbeat_seconds: float | None = None  # None: what the platform says


def _refusal(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]


class PlatformApi:
    """The platform's worker endpoints, as one registered worker."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base = base_url.rstrip("/")
        self.http = http
        self.worker_id = ""
        self.jwt = SecretStr("")
        self.expires_at = datetime.now(UTC)

    async def register(self, config: DaemonConfig) -> Registered:
        response = await self.http.post(
            f"{self.base}/api/workers/register",
            headers={"authorization": f"Bearer {config.token.get_secret_value()}"},
            json={
                "version": VERSION,
                "capabilities": config.capabilities,
                "maxConcurrency": config.max_concurrency,
                "hostname": config.hostname,
            },
        )
        if response.status_code == 401:
            raise DaemonStopped(
                "the platform refused the registration token (unknown, expired or revoked; "
                "create one with `durable fleet tokens create`)"
            )
        if response.status_code != 201:
            raise DaemonStopped(
                f"registration failed ({response.status_code}): {_refusal(response)}"
            )
        registered = Registered.model_validate(response.json())
        self.worker_id = registered.worker_id
        self.jwt, self.expires_at = registered.runtime_jwt, registered.expires_at
        return registered

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(
            method,
            f"{self.base}{path}",
            headers={"authorization": f"Bearer {self.jwt.get_secret_value()}"},
            json=body,
        )

    async def heartbeat(self, sessions: list[str], active: int) -> httpx.Response:
        path = f"/api/workers/{self.worker_id}/heartbeat"
        return await self.call("POST", path, {"sessions": sessions, "active": active})

    async def refresh(self) -> None:
        """A fresh runtime JWT. DaemonStopped when the platform refuses it (401, 410: the
        registration was revoked or the worker deregistered); httpx.HTTPError or a 5xx
        RefreshFailed when it cannot answer now."""
        response = await self.call("POST", f"/api/workers/{self.worker_id}/refresh")
        if response.status_code in (401, 403, 404, 410):
            raise DaemonStopped(
                f"the platform refused to refresh the runtime JWT ({response.status_code}: "
                f"{_refusal(response)}); the registration may have been revoked"
            )
        if response.status_code != 200:
            raise RefreshFailed(f"refresh answered {response.status_code}: {_refusal(response)}")
        body = response.json()
        self.jwt = SecretStr(body["runtimeJwt"])
        self.expires_at = datetime.fromisoformat(body["expiresAt"])

    async def deregister(self) -> None:
        response = await self.call("DELETE", f"/api/workers/{self.worker_id}")
        if response.status_code not in (204, 410):
            log.warning("deregistration refused", extra={"status": response.status_code})


# The claim the running attempt holds (each activity attempt runs in its own task, so two
# attempts of one session on this worker never see each other's).
_CLAIM: contextvars.ContextVar[int] = contextvars.ContextVar("fleet_claim")


class ApiSessionWriter:
    """A session's record, written through the platform API with the runtime JWT, under the
    claim this attempt holds: once a newer claim exists, an older attempt writes nothing."""

    def __init__(self, api: PlatformApi) -> None:
        self._api = api

    async def _post(self, session_id: str, what: str, body: dict[str, Any]) -> httpx.Response:
        response = await self._api.call(
            "POST", f"/api/sessions/{quote(session_id, safe='')}/{what}", body
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"the platform refused {what} of session {session_id} "
                f"({response.status_code}): {_refusal(response)}"
            )
        return response

    async def open(self, session: NewSession) -> str:
        """Claim the session: the platform checks it was placed on this worker's pool and
        numbers the claim (the attempt its progress and output are kept under)."""
        response = await self._post(session.session_id, "claim", {})
        _CLAIM.set(int(response.json()["attempt"]))
        return "running"

    async def add_progress(
        self, session_id: str, attempt: int, seq: int, line: str, *, org_id: str
    ) -> None:
        # The platform takes the org from this worker's runtime JWT, not from here.
        body = {"seq": seq, "line": line, "claim": _CLAIM.get(None)}
        await self._post(session_id, "progress", body)

    async def save_output(
        self,
        session_id: str,
        attempt: int,
        transcript: list[dict[str, Any]],
        result: Any,
        *,
        org_id: str,
    ) -> None:
        body = {"transcript": transcript, "result": result, "claim": _CLAIM.get(None)}
        await self._post(session_id, "output", body)


class Sessions:
    """The agent-session step, keeping what heartbeats report: the sessions running here
    (counted: a retried attempt can overlap the one it replaces), and those that ended here a
    moment ago, whose end the product's worker may not have recorded yet."""

    def __init__(self, activities: AgentActivities, *, keep_ended: float = 120.0) -> None:
        self._activities = activities
        self._running: Counter[str] = Counter()
        self._ended: dict[str, float] = {}
        self._keep_ended = keep_ended

    async def run(self, input: RunAgent) -> AgentRan:
        self._running[input.session_id] += 1
        try:
            return await self._activities.run_agent(input)
        finally:
            self._running[input.session_id] -= 1
            if self._running[input.session_id] <= 0:
                del self._running[input.session_id]
                self._ended[input.session_id] = time.monotonic()

    def reported(self) -> list[str]:
        now = time.monotonic()
        self._ended = {k: t for k, t in self._ended.items() if now - t < self._keep_ended}
        return sorted(set(self._running) | set(self._ended))

    @property
    def active(self) -> int:
        return sum(self._running.values())


async def _heartbeats(api: PlatformApi, sessions: Sessions, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            response = await api.heartbeat(sessions.reported(), sessions.active)
        except httpx.HTTPError as err:  # the platform is away: keep trying
            log.warning("heartbeat failed", extra={"error": str(err)})
            continue
        if response.status_code in (401, 410):
            raise DaemonStopped(
                f"the platform refused this worker's heartbeat ({response.status_code}): its "
                "registration was revoked or it was deregistered"
            )
        if response.status_code != 200:
            log.warning("heartbeat refused", extra={"status": response.status_code})


async def _refreshes(api: PlatformApi, client: Any) -> None:
    """Refresh at two thirds of the JWT's life; when the platform cannot answer, try again
    with backoff until the JWT expires. Stops (DaemonStopped) when it refuses."""
    while True:
        life = api.expires_at - datetime.now(UTC)
        await asyncio.sleep(max(1.0, life.total_seconds() * REFRESH_AT))
        delay = 1.0
        while True:
            try:
                await api.refresh()
                break
            except (httpx.HTTPError, RefreshFailed) as err:
                if datetime.now(UTC) + timedelta(seconds=delay) >= api.expires_at:
                    raise DaemonStopped(
                        f"could not refresh the runtime JWT before it expired: {err}"
                    ) from err
                log.warning("refresh failed; trying again", extra={"error": str(err)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        client.rpc_metadata = {"authorization": f"Bearer {api.jwt.get_secret_value()}"}
        log.info("runtime JWT refreshed", extra={"expires_at": api.expires_at.isoformat()})


async def run_daemon(settings: Settings, config: DaemonConfig) -> None:
    """Register, serve the pool's queue until SIGTERM/SIGINT or a stop, deregister. Raises
    DaemonStopped when the platform refuses it or Temporal cannot be reached."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per heartbeat
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            api = PlatformApi(config.api, http)
            try:
                registered = await api.register(config)
            except httpx.HTTPError as err:
                raise DaemonStopped(
                    f"cannot reach the platform API at {config.api}: {err}"
                ) from err
            try:
                await _serve(settings, config, api, registered, stop)
            finally:
                with contextlib.suppress(httpx.HTTPError):
                    await api.deregister()
                log.info("deregistered", extra={"worker": registered.worker_id})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve(
    settings: Settings,
    config: DaemonConfig,
    api: PlatformApi,
    registered: Registered,
    stop: asyncio.Event,
) -> None:
    log.info(
        "registered",
        extra={
            "worker": registered.worker_id,
            "pool": registered.pool.name,
            "project": registered.project,
            "task_queue": registered.task_queue,
        },
    )
    try:
        client = await connect_temporal(
            settings,
            rpc_metadata={"authorization": f"Bearer {api.jwt.get_secret_value()}"},
        )
    except TemporalUnreachable as err:
        raise DaemonStopped(str(err)) from err
    sessions = Sessions(AgentActivities(ApiSessionWriter(api), agent_runtimes(settings)))
    registry = Registry()
    registry.add_activity(run_agent.with_implementation(sessions.run))
    worker = build_worker(
        client,
        registry,
        registered.task_queue,
        max_concurrent_activities=config.max_concurrency,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        identity=f"{registered.worker_id}@{config.hostname}",
    )
    every = config.heartbeat_seconds or registered.heartbeat_seconds
    tasks = [
        asyncio.create_task(worker.run(), name="worker"),
        asyncio.create_task(_heartbeats(api, sessions, every), name="heartbeats"),
        asyncio.create_task(_refreshes(api, client), name="refreshes"),
        asyncio.create_task(stop.wait(), name="signal"),
    ]
    print(
        f"worker {registered.worker_id} serving pool {registered.pool.name} "
        f"({registered.pool.provider}) for project {registered.project} with "
        f"{config.max_concurrency} slot(s)",
        flush=True,
    )
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        failed = next((t for t in done if t.get_name() != "signal" and t.exception()), None)
        log.info("shutting down: waiting for running sessions")
        if tasks[0] not in done:
            await worker.shutdown()
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
    finally:
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("while stopping", extra={"task": task.get_name()})
