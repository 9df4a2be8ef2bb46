"""The auth section: what checking an API key costs an event sent over HTTP.

Two sides send the same event (`POST /events`, one shared keep-alive `httpx.AsyncClient`) to
the HTTP API on 127.0.0.1, each served by its own `ApiServer` on one `TemporalDurableClient`,
one `EventIngress` and one worker:

- "http+key": `create_app` with the real `Authenticator(KeyStore(pool))` (verified keys cached
  10 s) and a real key of the bench org with the scope `events:send`;
- "http, no auth": `create_app` with an `Authenticator` whose `principal()` returns the same
  org's principal without looking at the request; everything else is the same.

The waiting runs are started with the bench org's tenancy, so the event (stored as
`@<org>/<id>`, of that org) resolves them. The resume latency and the burst are measured as in
`bench/events.py`, the sides alternating. The bursts run in rounds of four (no auth, key, key,
no auth), so whatever a burst leaves behind (rows in PostgreSQL, work on the dev server) weighs
on both sides alike; one burst varies by tens of percent, so the figure is each side's median.
Every burst is verified as in `bench/events.py`.

Also: `Authenticator.principal` per call, on one fake request, for a cached key and, with
`cache_seconds=0`, for a key looked up in PostgreSQL on every call.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from starlette.requests import Request
from temporalio.client import Client

import durable
from adapters.temporal import EventIngress, TemporalDurableClient, build_worker
from api import create_app
from api.auth import Authenticator, Principal
from api.server import ApiServer
from durable import scoped_event_id
from store import EventStore, KeyStore
from workers.embedded import free_port

from .common import Row, p50_p95, say
from .events import (
    Burst,
    Side,
    Verdict,
    Waiting,
    alternate_latencies,
    burst,
    task_done,
    verify_durable,
)
from .models import Approval, WaitInp
from .workloads_events import REGISTRY, Approved, wait_run

ORG = "bench-auth"
TENANCY = durable.Tenancy(org_id=ORG)
SCOPES = ["events:send"]  # Approved starts no run: events:send is the scope it needs
HTTP_TIMEOUT = 60.0


class NoAuth(Authenticator):
    """The baseline: every request is the bench org's principal; the request is not read."""

    def __init__(self, keys: KeyStore) -> None:
        super().__init__(keys)
        self.fixed = Principal(ORG, "key:bench-no-auth", frozenset(SCOPES))

    async def principal(self, request: Request) -> Principal:
        return self.fixed


class HttpSide:
    """Starts runs of the bench org; sends their events with `POST /events`."""

    def __init__(
        self,
        name: str,
        client: TemporalDurableClient,
        store: EventStore,
        http: httpx.AsyncClient,
        address: str,
        key: str,
    ) -> None:
        self.name = name
        self.client = client
        self.store = store
        self.http = http
        self.url = f"{address}/events"
        self.headers = {"Authorization": f"Bearer {key}"}

    async def start(self) -> Waiting:
        handle = await self.client.start(wait_run, WaitInp(), tenancy=TENANCY)
        return Waiting(handle.temporal, handle.result)

    async def ready(self, run: Waiting) -> bool:
        return bool(await self.store.open_waits(run.id, org_id=ORG)) and await task_done(
            run.temporal
        )

    async def send(self, run: Waiting, event_id: str) -> None:
        body = {
            "type": Approved.type,
            "id": event_id,
            "data": Approval(workflow_id=run.id).model_dump(),
        }
        answer = await self.http.post(self.url, json=body, headers=self.headers)
        if answer.status_code != 202:
            raise RuntimeError(f"POST /events answered {answer.status_code}: {answer.text}")

    def stored_id(self, event_id: str) -> str:
        return scoped_event_id(ORG, event_id)


@dataclass
class AuthResult:
    rows: list[Row]  # baseline "http, no auth", measured "http+key"
    checks: list[tuple[str, float, str]]  # (figure, value, unit): the key check alone
    verdicts: list[Verdict]


def merged(bursts: list[Burst]) -> Burst:
    """One side's bursts as one: all their runs and events, the seconds summed."""
    out = Burst(bursts[0].side, 0.0, [], {}, {})
    for one in bursts:
        out.seconds += one.seconds
        out.runs += one.runs
        out.sent.update(one.sent)
        out.got.update(one.got)
        out.errors += one.errors
    return out


def fake_request(key: str) -> Request:
    return Request(
        {
            "type": "http",
            "headers": [(b"authorization", b"Bearer " + key.encode())],
            "method": "GET",
            "path": "/",
            "query_string": b"",
        }
    )


async def per_call(auth: Authenticator, key: str, calls: int) -> float:
    """Seconds per `auth.principal` call on one fake request (after one call to warm up)."""
    request = fake_request(key)
    expected = await auth.principal(request)
    if expected.org_id != ORG:
        raise RuntimeError(f"the key checked as org {expected.org_id!r}, not {ORG!r}")
    begin = time.perf_counter()
    for _ in range(calls):
        await auth.principal(request)
    return (time.perf_counter() - begin) / calls


async def measure_auth(client: Client, pool: asyncpg.Pool, args: Any, label: str) -> AuthResult:
    keys = KeyStore(pool)
    made = await keys.create(ORG, f"bench-{uuid.uuid4().hex[:8]}", SCOPES)
    checks: list[tuple[str, float, str]] = []
    n = args.auth_calls
    say(f"[{label}] Authenticator.principal, cached key, {n} calls ...")
    cached = await per_call(Authenticator(keys), made.secret, n)
    checks.append((f"{label}: key check, cached key (per call, {n} calls)", cached * 1e6, "µs"))
    n = args.auth_db_calls
    say(f"[{label}] Authenticator.principal, uncached key (cache_seconds=0), {n} calls ...")
    uncached = await per_call(Authenticator(keys, cache_seconds=0), made.secret, n)
    figure = f"{label}: key check, uncached key: one PostgreSQL lookup (per call, {n} calls)"
    checks.append((figure, uncached * 1e3, "ms"))

    queue = f"bench-auth-{uuid.uuid4()}"
    store = EventStore(pool)
    ingress = EventIngress(client, store, REGISTRY, queue)
    durable_client = TemporalDurableClient(client, REGISTRY, queue, events=ingress)
    with_key = ApiServer(
        create_app(durable_client, REGISTRY, store, auth=Authenticator(keys)), free_port()
    )
    without = ApiServer(create_app(durable_client, REGISTRY, store, auth=NoAuth(keys)), free_port())
    c = args.burst_concurrency
    limits = httpx.Limits(max_connections=2 * c, max_keepalive_connections=2 * c)
    rows: list[Row] = []
    async with (
        build_worker(client, REGISTRY, queue, events=ingress),
        httpx.AsyncClient(limits=limits, timeout=HTTP_TIMEOUT) as http,
    ):
        dispatcher = asyncio.create_task(ingress.run_dispatcher())  # beside the worker
        try:
            await with_key.start()
            await without.start()
            # The same header on both sides; the baseline's authenticator does not read it.
            plain = HttpSide(
                "http, no auth", durable_client, store, http, without.address, made.secret
            )
            keyed = HttpSide("http+key", durable_client, store, http, with_key.address, made.secret)
            sides: list[Side] = [plain, keyed]
            say(f"[{label}] POST /events -> resume latency, {args.event_samples} runs each ...")
            sends, totals = await alternate_latencies(sides, args.event_samples)
            rows += p50_p95(f"{label}: POST /events -> resume", totals[0], totals[1])
            rows += p50_p95(f"{label}: of which the POST (until its 202)", sends[0], sends[1])
            n, rounds = args.auth_burst, args.auth_rounds
            say(
                f"[{label}] {rounds} rounds of 4 bursts: {n} waiting runs, {n} POST /events,"
                f" {c} at a time ..."
            )
            bursts: dict[str, list[Burst]] = {plain.name: [], keyed.name: []}
            for _ in range(rounds):
                for side in (plain, keyed, keyed, plain):
                    bursts[side.name].append(await burst(side, n, c))
                    say(f"  {side.name}: {bursts[side.name][-1].seconds:.2f} s")
            plain_burst, keyed_burst = merged(bursts[plain.name]), merged(bursts[keyed.name])
            say(f"[{label}] verifying the bursts ...")
            verdicts = [
                await verify_durable(plain_burst, store, plain.name, org_id=ORG),
                await verify_durable(keyed_burst, store, keyed.name, org_id=ORG),
            ]
        finally:
            await with_key.stop()
            await without.stop()
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
    figure = f"{label}: {n} events to {n} waiting runs, {c} POSTs at a time"
    each = 2 * rounds  # bursts per side
    plain_s, keyed_s = (statistics.median(b.seconds for b in bursts[side.name]) for side in sides)
    rows += [
        Row(
            f"{figure}, until all results are in, median of {each} bursts",
            plain_s,
            keyed_s,
            "s",
        ),
        Row(f"{figure}, events/s, median of {each} bursts", n / plain_s, n / keyed_s, "events/s"),
    ]
    return AuthResult(rows, checks, verdicts)


def report(result: AuthResult) -> str:
    """The section's table: the sides with their ratio, then the key check alone."""
    return "\n".join(
        [
            "| figure | http, no auth | http+key | ratio http+key / http, no auth |",
            "| --- | --- | --- | --- |",
            *(row.line() for row in result.rows),
            *(
                f"| {figure} | - | {value:.2f} {unit} | - |"
                for figure, value, unit in result.checks
            ),
        ]
    )
