"""Where the CLI finds the embedded stack of `durable dev`, the same way from any directory.

The data folder is, in this order:

1. DURABLE_DATA_DIR, when set (a relative one is taken from the current directory);
2. a `.durable` folder of the current directory or one above it whose embedded PostgreSQL is
   running (so commands run anywhere inside the checkout find the stack `./scripts/dev` runs);
3. the folder named by the record `durable dev` writes while it runs:
   `$XDG_STATE_HOME/durable/dev.json` (default `~/.local/state/durable/dev.json`), owner-only;
   a record whose `durable dev` is gone, or that anyone else could have written, is ignored;
4. the default, `./.durable` of the current directory.

Only folders and records owned by the current user count: another user's stack is never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from store._pool import redact

from .embedded import embedded_url, private_dir
from .settings import Settings

RECORD_NAME = "dev.json"


def state_dir() -> Path:
    """`$XDG_STATE_HOME/durable`, else `~/.local/state/durable` (XDG ignores a relative one)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "durable"


def record_file() -> Path:
    return state_dir() / RECORD_NAME


def _alive(pid: int) -> bool:
    """A process `pid` of this user exists (another user's is not one of ours)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:
        return False
    return True


def _mine(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.getuid()
    except OSError:
        return False


def postgres_socket(data_dir: Path) -> Path | None:
    """The socket folder of the embedded PostgreSQL of `data_dir` when it runs (its
    postmaster.pid names a live process and the socket is there), else None."""
    pgdata = data_dir / "postgres"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    # The library puts the socket in pgdata unless that path is too long for a socket.
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else pgdata
    if not _alive(pid) or not (socket_dir / f".s.PGSQL.{port}").exists():
        return None
    return socket_dir


@dataclass(frozen=True)
class Record:
    """What `durable dev` writes while it runs: its data folder and its pid."""

    data_dir: Path
    pid: int
    postgres: bool  # it runs the embedded PostgreSQL (no DATABASE_URL)

    def running(self) -> bool:
        if not _alive(self.pid) or not _mine(self.data_dir):
            return False
        return postgres_socket(self.data_dir) is not None if self.postgres else True


def write_record(data_dir: Path, *, postgres: bool) -> Path:
    """Record `data_dir` as the one of the `durable dev` of this process (0600, in a 0700
    folder), replacing the record of any earlier one."""
    folder = state_dir()
    private_dir(folder)
    path = folder / RECORD_NAME
    body = {
        "data_dir": str(data_dir.resolve()),
        "pid": os.getpid(),
        "postgres": postgres,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    temporary = folder / f".{RECORD_NAME}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(body) + "\n")
    os.replace(temporary, path)
    return path


def remove_record() -> None:
    """Remove the record if it is still this process's (a later `durable dev` may own it)."""
    path = record_file()
    record, _ = read_record(path)
    if record is not None and record.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_record(path: Path) -> tuple[Record | None, str]:
    """The record at `path`, or None and why it is not usable ('' when there is none)."""
    try:
        info = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return None, ""
    except OSError as err:
        return None, f"the record {path} cannot be read ({err}): ignored"
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return None, f"the record {path} is not owner-only or not yours: ignored"
    try:
        body = json.loads(text)
        record = Record(Path(body["data_dir"]), int(body["pid"]), bool(body.get("postgres")))
    except (ValueError, KeyError, TypeError):
        return None, f"the record {path} is malformed: ignored"
    return record, ""


@dataclass(frozen=True)
class Located:
    """The data folder the CLI uses, why (`source`), and what it passed over (`notes`)."""

    path: Path
    source: str
    notes: tuple[str, ...] = ()

    @property
    def socket_dir(self) -> Path | None:
        return postgres_socket(self.path)

    def not_running(self) -> str:
        """Why there is no database to connect to, naming the setting and the folder."""
        url = redact(embedded_url(self.path / "postgres"))
        why = f"{self.source}: {'; '.join(self.notes)}" if self.notes else self.source
        return (
            f"cannot connect to PostgreSQL at {url}: DATABASE_URL is not set, so the CLI looked"
            f" for the embedded stack of `durable dev` in {self.path} ({why}) and found none"
            " running; start `durable dev` or set DATABASE_URL"
        )


def locate_data_dir(settings: Settings, cwd: Path | None = None) -> Located:
    """The data folder of the embedded stack, found as the module docstring says."""
    here = (cwd or Path.cwd()).resolve()
    if "data_dir" in settings.model_fields_set:
        return Located((here / settings.data_dir).resolve(), "from DURABLE_DATA_DIR")
    for folder in (here, *here.parents):
        candidate = folder / ".durable"
        if _mine(candidate) and postgres_socket(candidate) is not None:
            where = "the current directory" if folder == here else f"{folder}, above it"
            return Located(candidate, f"the running stack's `.durable` folder in {where}")
    notes = [f"no running stack in a `.durable` folder of {here} or above it"]
    path = record_file()
    record, problem = read_record(path)
    if record is not None and record.running():
        return Located(record.data_dir, f"from the record of the running `durable dev` in {path}")
    if record is not None:
        notes.append(
            f"the record {path} names {record.data_dir}, whose `durable dev` (pid {record.pid})"
            " is no longer running: ignored"
        )
    else:
        notes.append(problem or f"no record of a running `durable dev` in {path}")
    default = (here / settings.data_dir).resolve()
    return Located(default, "the default: ./.durable of the current directory", tuple(notes))
