"""Secrets stay out of what is printed and out of other users' reach: a DSN's password in any
of its forms is redacted (library, `durable waits`, `durable worker`), and the embedded
Temporal's SQLite files and the data directory are owner-only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from store._pool import redact, scrub
from workers.embedded import EmbeddedTemporal, free_port, private_dir, sqlite_files

DURABLE = str(Path(sys.executable).parent / "durable")


@pytest.mark.parametrize(
    ("dsn", "redacted"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgres://user:secret@host:5432/db?sslmode=require", None),
        ("postgresql://app@host/app?password=secret", "postgresql://app@host/app?password=***"),
        (
            "postgresql://app@host/app?sslmode=disable&password=secret&application_name=x",
            "postgresql://app@host/app?sslmode=disable&password=***&application_name=x",
        ),
        (
            "postgresql://app@host/app?sslpassword=secret",
            "postgresql://app@host/app?sslpassword=***",
        ),
        ("postgresql://app@host/app?PASSWORD=secret", "postgresql://app@host/app?PASSWORD=***"),
        ("postgresql://app@host/app?pass%77ord=secret", "postgresql://app@host/app?pass%77ord=***"),
        ("postgresql://u:s%65cr%40et@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:se@cret@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:secret@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        ("host=db user=app password=secret dbname=app", "host=db user=app password=*** dbname=app"),
        ("host=db password = secret dbname=app", "host=db password = *** dbname=app"),
        ("host=db password='sec ret\\'x' dbname=app", "host=db password=*** dbname=app"),
    ],
)
def test_redact_hides_the_password_in_every_form(dsn: str, redacted: str | None) -> None:
    out = redact(dsn)
    assert "secret" not in out and "s%65cr" not in out, out
    if redacted is not None:
        assert out == redacted


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app@127.0.0.1:5432/app",
        "postgresql://postgres@/postgres?host=/tmp/durable/postgres",
        "host=db user=app dbname=app",
    ],
)
def test_redact_leaves_a_dsn_without_a_password_as_it_is(dsn: str) -> None:
    assert redact(dsn) == dsn


def test_scrub_removes_the_password_an_error_text_echoes() -> None:
    dsn = "postgresql://app@h/app?password=s%33cret"
    assert scrub("bad s3cret and s%33cret", dsn) == "bad *** and ***"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app@127.0.0.1:{port}/app?password=s3cret",
        "postgresql://app:s3cret@127.0.0.1:{port}/app",
    ],
)
@pytest.mark.parametrize("command", [["waits", "some-run"], ["worker"]])
def test_the_cli_names_the_host_but_not_the_password(dsn: str, command: list[str]) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn.format(port=port)}
    done = subprocess.run([DURABLE, *command], env=env, capture_output=True, text=True, timeout=90)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert f"127.0.0.1:{port}" in said, said
    assert "s3cret" not in said, said


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_embedded_temporals_files_and_their_directory_are_owner_only(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    db_file = data / "temporal.sqlite"
    server = EmbeddedTemporal(port=free_port(), db_file=db_file, log_file=data / "temporal.log")
    await server.start()
    try:
        client = await server.connect()
        await client.count_workflows()  # the server writes to its database
        files = [p for p in sqlite_files(db_file) if p.exists()]
        assert db_file in files
        modes = {p.name: oct(mode(p)) for p in [*files, data / "temporal.log"]}
        assert modes == {p: "0o600" for p in modes}, modes
        assert mode(data) == 0o700
    finally:
        await server.stop()


def test_the_data_directory_is_made_owner_only(tmp_path: Path) -> None:
    made, existing = tmp_path / "a" / ".durable", tmp_path / "old"
    existing.mkdir(mode=0o755)
    private_dir(made)
    private_dir(existing)
    assert (mode(made), mode(existing)) == (0o700, 0o700)
