"""The fleet section: what running an agent session on a fleet worker costs.

    python -m bench.fleet              # 30 sessions per side (about 2 minutes)
    python -m bench.fleet --samples 10

One dev server, one embedded PostgreSQL, the product's worker and the HTTP API in this process,
and one `durable fleet worker` process (registered with a real token, on a `local` pool). The
same agent work, the shipped local agent as a subprocess on the same three issues, runs three
ways, one at a time, alternating:

- raw: a plain temporalio workflow runs one activity on another task queue (a pool's), whose
  worker runs the agent; the baseline: what Temporal itself costs to put work on a pool.
- durable, no route: `rensei/pm.agent-demo.run` dispatches a session for a project without an
  execution route, so its agent step runs on the product's own worker; and waits for its
  completion event.
- durable, fleet: the same for a project routed to the pool: the route step, the agent step on
  the daemon's queue, its claim, progress lines and result through the API with its JWT.

Each figure is from start to result of the outer run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

import asyncpg
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

import durable
from activities.agents import (
    CommandRuntime,
    RuntimeIO,
    RuntimeRequest,
    Transcript,
    local_agent_command,
)
from adapters.temporal import (
    EventIngress,
    TemporalDurableClient,
    build_worker,
    data_converter,
    ensure_search_attributes,
)
from api import create_app
from api.fleet import FleetApi
from api.server import ApiServer
from store import EventStore, FleetStore, SessionStore
from workers.embedded import EmbeddedTemporal, free_port
from workers.fleet import RuntimeKeys
from workers.fleet.admin import create_registration_token
from workers.runtime import worker_registry
from workflows import registry

from .__main__ import embedded_postgres
from .common import Row, pct, say
from .workloads_raw import RawAgent

ISSUES = [
    {"id": "DEMO-1", "title": "App crashes when saving a draft"},
    {"id": "DEMO-2", "title": "Add support for dark mode"},
    {"id": "DEMO-3", "title": "Typo in the README"},
]
ORG = "bench-org"


@activity.defn(name="raw.agent")
async def raw_agent(prompt: str) -> str:
    io = RuntimeIO(lambda line: asyncio.sleep(0), Transcript())
    request = RuntimeRequest(
        session_id=str(uuid.uuid4()), prompt=prompt, context={"issues": ISSUES}, timeout_seconds=60
    )
    result = await CommandRuntime(local_agent_command()).run(request, io)
    return str(result)


async def _timed(call: Awaitable[None]) -> float:
    began = time.perf_counter()
    await call
    return (time.perf_counter() - began) * 1000


async def measure(
    server: EmbeddedTemporal, client: Client, pool_db: asyncpg.Pool, samples: int
) -> list[Row]:
    queue = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    shipped = registry()
    ingress = EventIngress(client, EventStore(pool_db), shipped, queue)
    durable_client = TemporalDurableClient(client, shipped, queue, events=ingress)
    fleet = FleetStore(pool_db)
    await fleet.create_pool(ORG, "bench-pool", "local")
    await fleet.set_route(ORG, "routed", preferred=["bench-pool"])
    keys = RuntimeKeys.generate(issuer="durable", audience="durable-workers")
    api = ApiServer(
        create_app(
            durable_client,
            shipped,
            EventStore(pool_db),
            fleet=FleetApi(fleet, SessionStore(pool_db), keys),
        ),
        free_port(),
    )
    await api.start()
    token = await create_registration_token(fleet, ORG, "routed", "bench-pool")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        TEMPORAL_ADDRESS=server.address,
        DURABLE_REGISTRATION_TOKEN=token.token.plaintext,
        DURABLE_LOG_FORMAT="text",
    )
    daemon = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from cli.main import main; main()",
        "fleet",
        "worker",
        "--api",
        api.address,
        "--max-concurrency",
        "4",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    raw_queue = f"{queue}-raw-pool"
    try:
        assert daemon.stdout is not None
        line = (await asyncio.wait_for(daemon.stdout.readline(), 60)).decode()
        if not line.startswith("worker wkr_"):
            raise RuntimeError(f"the fleet worker did not start: {line!r}")
        say(f"fleet worker up: {line.strip()}")
        tenancy = durable.Tenancy(org_id=ORG)

        async def session(project: str) -> None:
            handle = await durable_client.start(
                "rensei/pm.agent-demo.run", {"project": project}, tenancy=tenancy
            )
            out = await handle.result()
            if out.status != "completed":
                raise RuntimeError(f"{project}: session {out.status}: {out.error}")

        async def raw() -> None:
            await client.execute_workflow(
                RawAgent.run, raw_queue, id=f"raw-{uuid.uuid4()}", task_queue=f"{queue}-raw"
            )

        times: dict[str, list[float]] = {"raw": [], "own": [], "fleet": []}
        async with (
            build_worker(client, worker_registry(pool_db, durable_client), queue, events=ingress),
            Worker(client, task_queue=f"{queue}-raw", workflows=[RawAgent]),
            Worker(client, task_queue=raw_queue, activities=[raw_agent]),
        ):
            for warm in (raw(), session(""), session("routed")):
                await warm
            for n in range(samples):
                times["raw"].append(await _timed(raw()))
                times["own"].append(await _timed(session("")))
                times["fleet"].append(await _timed(session("routed")))
                if (n + 1) % 10 == 0:
                    say(f"  {n + 1}/{samples} of each")
    finally:
        if daemon.returncode is None:
            daemon.terminate()
            await daemon.wait()
        await api.stop()
    rows = []
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        raw_q = pct(times["raw"], q)
        rows.append(Row(f"agent session, no route, {name}", raw_q, pct(times["own"], q), "ms"))
        fleet_q = pct(times["fleet"], q)
        rows.append(Row(f"agent session on a fleet worker, {name}", raw_q, fleet_q, "ms"))
    extra = statistics.median(times["fleet"]) - statistics.median(times["own"])
    say(f"fleet placement adds {extra:.1f} ms at the median over no route")
    return rows


async def main(samples: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        server = EmbeddedTemporal(port=free_port(), db_file=Path(tmp) / "temporal.sqlite")
        say("starting a dev server ...")
        await server.start()
        try:
            client = await Client.connect(server.address, data_converter=data_converter())
            await ensure_search_attributes(client, create=True)
            async with embedded_postgres() as pool:
                rows = await measure(server, client, pool, samples)
        finally:
            await server.stop()
    print("| figure | raw temporalio (activity on a pool's queue) | durable | ratio |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--samples", type=int, default=30, help="sessions per side")
    asyncio.run(main(parser.parse_args().samples))
