"""`durable dev`: the whole product on one machine, with nothing to install but this package.

Starts the Temporal dev server (SQLite in the data directory, UI on :8233) and PostgreSQL
(cluster in the data directory) unless TEMPORAL_ADDRESS / DATABASE_URL point elsewhere, applies
migrations, and runs the worker. Ctrl-C or SIGTERM stops everything it started, worker first,
also when it comes while starting; what a killed `durable dev` left running is stopped on the
next start (workers/orphans.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.linear.local_schema import SchemaMissing, schema_path
from activities.linear.local_server import LocalLinear
from activities.linear.steps import LinearCredentials, LinearSteps
from adapters.temporal import TemporalDurableClient, ensure_search_attributes, sync_schedules
from store import EventStore, KeyStore, create_pool, migrate
from store._pool import redact
from workflows import registry as shipped_registry

from . import orphans
from .demo import run_demo
from .embedded import (
    EmbeddedPostgres,
    EmbeddedTemporal,
    StackNotStarting,
    embedded_url,
    ensure_app_login,
    port_in_use,
    postgres_binary,
    private_dir,
)
from .locate import record_file, remove_record, write_record
from .runtime import connect_temporal, make_worker, run_until_signalled
from .settings import Settings
from .telemetry import start_telemetry

# The local Linear's one org and key (runs that act on it: `durable start ... --org local`).
LOCAL_ORG = "local"
LOCAL_KEY = "lin_api_local_dev_key"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Interrupted(Exception):
    """SIGINT or SIGTERM came while `durable dev` was starting; what had started is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} while starting")
        self.signum = signum


class Signals:
    """SIGINT (Ctrl-C) and SIGTERM for the whole of `durable dev`. While it starts, the first
    cancels the start (and so stops what had started); once running, it sets `requested`, and
    the worker shuts down gracefully; once stopping, more are ignored so that PostgreSQL and
    Temporal are always stopped (a kill -9 leaves them to the next start, workers/orphans.py)."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.received: int | None = None
        self._main = asyncio.current_task()
        self._phase = "starting"
        self._loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on, signum)

    def running(self) -> None:
        self._phase = "running"

    def stopping(self) -> None:
        self._phase = "stopping"

    def _on(self, signum: int) -> None:
        if self.received is not None or self._phase == "stopping":
            say("stopping already: waiting for Temporal and PostgreSQL to stop ...")
            return
        self.received = signum
        self.requested.set()
        if self._phase == "starting" and self._main is not None:
            self._main.cancel()

    def close(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.remove_signal_handler(signum)


def check_ports(settings: Settings) -> None:
    """Refuse to start when a port this stack listens on is taken, naming it and its setting."""
    wanted = [("DURABLE_API_PORT", settings.api_port)]
    if settings.temporal_address is None:
        wanted[:0] = [("DURABLE_TEMPORAL_PORT", settings.temporal_port)]
        wanted += [("DURABLE_UI_PORT", settings.ui_port)]
    if not settings.linear_configured:
        wanted.append(("DURABLE_LINEAR_PORT", settings.linear_local_port))
    for name, port in wanted:
        if port_in_use(port):
            raise StackNotStarting(
                f"port {port} ({name}) is taken by another program: stop it, or set {name} to"
                " a free port"
            )


@contextlib.asynccontextmanager
async def embedded_stack(
    settings: Settings, signals: Signals | None = None
) -> AsyncIterator[tuple[str, str, str | None]]:
    """Start what settings leave embedded; yield (temporal address, database url, UI url).
    First stop what an earlier, killed `durable dev` left running on this data folder."""
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        lock = orphans.hold(data)
    except orphans.DataDirBusy as err:
        raise StackNotStarting(str(err)) from None
    temporal: EmbeddedTemporal | None = None
    postgres: EmbeddedPostgres | None = None
    try:
        # Before private_dir: run as root, the library has made the folder traversable for the
        # cluster's own user, and a cluster that cannot reach its files cannot shut down cleanly.
        await orphans.stop_orphans(data, postgres_binary(), say)
        private_dir(data)  # the databases, the local API key and the logs: the owner's only
        check_ports(settings)
        if settings.temporal_address is None:
            db_file = data / "temporal.sqlite"
            say(f"starting the Temporal dev server (data: {db_file}) ...")
            temporal = EmbeddedTemporal(
                port=settings.temporal_port,
                ui_port=settings.ui_port,
                db_file=db_file,
                namespace=settings.temporal_namespace,
                log_file=data / "temporal.log",
                # `durable dev` serves the codec endpoint beside the API (api/codec.py).
                ui_codec_endpoint=(
                    f"http://127.0.0.1:{settings.api_port}/codec" if settings.codec_keys else None
                ),
                on_started=lambda pid: orphans.record(
                    data, "temporal", pid, "--db-filename", str(db_file)
                ),
            )
            await temporal.start()
        if settings.database_url is None:
            pgdata = data / "postgres"
            say(f"starting PostgreSQL (data: {pgdata}) ...")
            postgres = EmbeddedPostgres(pgdata, sole_owner=True)  # we hold the folder's lock
            database_url = await postgres.start()
            if postgres.pid is not None:
                orphans.record(data, "postgres", postgres.pid, "-D", str(pgdata))
        else:
            database_url = settings.database_url.get_secret_value()
        yield (
            settings.effective_temporal_address,
            database_url,
            temporal.ui_address if temporal else None,
        )
    finally:
        if signals is not None:
            signals.stopping()
        try:
            if temporal is not None:
                say("stopping the Temporal dev server ...")
                await temporal.stop()
                orphans.forget(data, "temporal")
        finally:
            if postgres is not None:
                say("stopping PostgreSQL ...")
                await postgres.stop()
                orphans.forget(data, "postgres")
            lock.close()


async def start_local_linear(settings: Settings) -> tuple[LinearSteps | None, LocalLinear | None]:
    """With no Linear credentials configured, the local Linear-compatible server (seeded, on
    DURABLE_LINEAR_PORT) and steps that act on it for org `local`; else (None, None)."""
    if settings.linear_configured:
        return None, None
    if not schema_path().is_file():
        say(f"not starting the local Linear: {SchemaMissing(schema_path())}")
        return None, None
    server = LocalLinear(keys={LOCAL_KEY: LOCAL_ORG}, port=settings.linear_local_port)
    await server.start()
    steps = LinearSteps(LinearCredentials(api_keys=json.dumps({LOCAL_ORG: LOCAL_KEY})), server.url)
    return steps, server


def remember_stack(settings: Settings) -> Path | None:
    """Write the record that lets the CLI find this stack's data dir from any directory
    (`workers.locate`); None, with a warning, when it cannot be written."""
    try:
        return write_record(settings.data_dir, postgres=settings.database_url is None)
    except OSError as err:
        say(f"warning: cannot write {record_file()} ({err}): the CLI finds this stack only")
        say("         from this directory or with DURABLE_DATA_DIR set")
        return None


LOCAL_KEY_SCOPES = ["events:send", "runs:start", "runs:read", "approve"]


async def ensure_local_key(pool: Any, settings: Settings) -> str:
    """The API key of org `local` the CLI uses in this dev stack: the one in
    DURABLE_DATA_DIR/api-key while it is still valid, else a new one written there (0600)."""
    keys = KeyStore(pool)
    path = settings.local_key_file
    with contextlib.suppress(OSError):
        existing = path.read_text().strip()
        found = await keys.verify(existing)
        if found is not None and found.usable_at(datetime.now(UTC)):
            return existing
    made = await keys.create(
        LOCAL_ORG,
        f"local-dev-{datetime.now(UTC):%Y%m%dT%H%M%S%f}",
        LOCAL_KEY_SCOPES,
        created_by="durable dev",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(made.secret + "\n")
    return made.secret


async def run_dev(
    settings: Settings,
    after_start: Callable[[TemporalDurableClient, EventStore], Awaitable[None]] | None = None,
    *,
    demo: bool = True,
) -> None:
    """Run everything until Ctrl-C or SIGTERM. With `demo` and the local Linear running, start
    the backlog-triage PM agent's demo run once the worker is up (workers/demo.py). Raises
    Interrupted when a signal came while starting (once everything started is stopped)."""
    signals = Signals()
    try:
        await _run_dev(settings, signals, after_start, demo=demo)
    except asyncio.CancelledError:
        if signals.received is None:
            raise
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        raise Interrupted(signals.received) from None
    finally:
        signals.close()


async def _run_dev(
    settings: Settings,
    signals: Signals,
    after_start: Callable[[TemporalDurableClient, EventStore], Awaitable[None]] | None,
    *,
    demo: bool,
) -> None:
    telemetry = start_telemetry(settings, metrics=True)
    async with (
        embedded_stack(settings, signals) as (address, database_url, ui),
        contextlib.AsyncExitStack() as stack,
    ):
        pool = await create_pool(database_url)
        try:
            applied = await migrate(pool)
            if settings.database_url is None:
                # Migrated as the cluster's superuser; everything else logs in as its app role.
                await ensure_app_login(pool)
                await pool.close()
                database_url = embedded_url(settings.data_dir.resolve() / "postgres")
                pool = await create_pool(database_url)
            say(f"database ready ({len(applied)} migration(s) applied now)")
            record = remember_stack(settings)
            if record is not None:
                stack.callback(remove_record)
            await ensure_local_key(pool, settings)
            client = await connect_temporal(
                settings, telemetry, embedded=settings.temporal_address is None
            )
            await ensure_search_attributes(client, create=settings.temporal_address is None)
            linear, local_linear = await start_local_linear(settings)
            if local_linear is not None:
                stack.push_async_callback(local_linear.stop)
            worker, ingress = make_worker(client, settings, pool, linear)
            synced = await sync_schedules(client, shipped_registry(), settings.task_queue)
            say(f"cron schedules: {synced.model_dump_json()}")
            durable = TemporalDurableClient(
                client, shipped_registry(), settings.task_queue, events=ingress
            )

            async def ready() -> None:
                say("")
                say(f"  Temporal UI      {ui or '(external cluster: use its UI)'}")
                say(f"  Temporal         {address}  namespace={settings.temporal_namespace}")
                say(f"  task queue       {settings.task_queue}")
                say(f"  API key (local)  in {settings.local_key_file} (the CLI uses it)")
                if record is not None:
                    say(f"  data             {settings.data_dir.resolve()}")
                    say(f"                   the CLI finds it from any directory: {record}")
                say(f"  DATABASE_URL     {redact(database_url)}")
                if local_linear is not None:
                    say(f"  Linear (local)   {local_linear.url}  for org {LOCAL_ORG!r}")
                    say(f"                   API key: Authorization: {LOCAL_KEY}")
                    say(f"                   everything in it: {local_linear.origin}/state")
                elif settings.linear_configured:
                    say(f"  Linear           {settings.linear_api_url}")
                if telemetry.metrics_address is not None:
                    say(f"  metrics          http://{telemetry.metrics_address}/metrics")
                if telemetry.tracer_provider is not None:
                    say(f"  traces           OTEL_TRACES_EXPORTER={settings.traces_exporter}")
                say("")
                say("  In another terminal:  durable start rensei/example.run --wait")
                say("                        durable workflows   (what else there is)")
                say("  Press Ctrl-C to stop everything started here.")
                say("")
                if after_start is not None:
                    await after_start(durable, ingress.store)
                if demo and local_linear is not None:
                    task = asyncio.create_task(
                        run_demo(durable, local_linear, LOCAL_ORG, ui, settings.temporal_namespace)
                    )
                    stack.callback(task.cancel)

            signals.running()
            await run_until_signalled(
                worker, on_ready=ready, dispatcher=ingress, stop=signals.requested
            )
        finally:
            signals.stopping()
            await pool.close()
            telemetry.shutdown()
