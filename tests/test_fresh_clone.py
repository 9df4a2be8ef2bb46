"""A clone of this repository with nothing beside it, and an installed wheel, are the whole
product: the local Linear that `durable dev` runs for its demo finds Linear's schema inside the
package and validates operations against it, with no `LINEAR_SCHEMA_PATH` and no folder beside
the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from workers.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]

# Starts the local Linear exactly as `durable dev` does (workers/dev.py), sends it one valid
# and one invalid query, and prints what it saw as JSON.
PROBE = """
import asyncio, json, sys
import httpx
import activities
from workers.dev import LOCAL_KEY, start_local_linear
from workers.settings import Settings

async def main() -> None:
    steps, server = await start_local_linear(Settings())
    assert server is not None, "durable dev would not start the local Linear"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            async def ask(query: str) -> httpx.Response:
                return await http.post(
                    server.url, json={"query": query}, headers={"Authorization": LOCAL_KEY}
                )
            good = await ask("{ viewer { name } issues(first: 50) { nodes { identifier } } }")
            bad = await ask("{ viewer { name favouriteColour } }")
    finally:
        await server.stop()
    print(json.dumps({
        "package": activities.__file__,
        "good": [good.status_code, good.json()],
        "bad": [bad.status_code, bad.json()],
    }))

asyncio.run(main())
"""


def shipped_files() -> list[str]:
    """What a clone of this working tree holds: tracked files, and new ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Linear setting, so only the package can help."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LINEAR_", "DURABLE_", "PYTHON"))
    }
    return {**env, **extra}


def probe(cwd: Path, pythonpath: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env=clean_env(PYTHONPATH=str(pythonpath), DURABLE_LINEAR_PORT=str(free_port())),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def assert_local_linear_validates(result: dict[str, Any], home: Path) -> None:
    assert Path(result["package"]).is_relative_to(home), result["package"]
    good_status, good = result["good"]
    assert good_status == 200, good
    assert good["data"]["viewer"]["name"] == "Ada Lovelace"
    assert len(good["data"]["issues"]["nodes"]) == 10, "the demo's seeded issues"
    bad_status, bad = result["bad"]
    assert bad_status == 400, bad
    [error] = bad["errors"]
    assert "favouriteColour" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def clone_into(clone: Path) -> Path:
    for name in shipped_files():
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return clone


def test_a_clone_with_nothing_beside_it_runs_the_local_linear(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    clone = clone_into(empty / "durable")
    assert [path.name for path in empty.iterdir()] == ["durable"], "nothing beside the clone"

    assert_local_linear_validates(probe(clone, clone), clone)


def test_nothing_shipped_points_outside_the_repository() -> None:
    beside = "../" + "shared"  # spelled in two parts so this file does not name it
    naming = [
        name
        for name in shipped_files()
        if not name.endswith(".graphql") and beside in (ROOT / name).read_text(errors="replace")
    ]
    assert naming == [], f"these files refer to {beside}, which a user's clone does not have"


def test_an_installed_wheel_carries_linears_schema(tmp_path: Path) -> None:
    source = clone_into(tmp_path / "source")  # setuptools builds in the tree: not in ours
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("rensei_durable-*.whl")
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:  # a wheel installs by being unpacked
        archive.extractall(site)
    licence = site / "activities" / "linear" / "schema" / "LICENSE"
    assert "MIT License" in licence.read_text()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()

    assert_local_linear_validates(probe(elsewhere, site), site)
