"""The set-up both README commands share (scripts/_venv.sh): a fresh virtualenv with the
project in it, saying what it does in two lines and nothing from pip or setuptools."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def set_up(venv: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DURABLE_VENV": str(venv)}
    return subprocess.run(
        ["bash", "-c", f"source {ROOT / 'scripts' / '_venv.sh'} && command -v durable"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_first_set_up_says_two_lines_and_hides_setuptools_banners(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    first = set_up(venv)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(venv / "bin" / "durable"), "its durable comes first"
    assert first.stderr.splitlines() == [
        f"creating {venv} ...",
        f"installing the project and its dev tools into {venv} (first run takes a minute) ...",
    ]
    assert "Editable installation" in (venv / "install.log").read_text(), "kept in the log"

    again = set_up(venv)
    assert again.returncode == 0 and again.stderr == "", "nothing to do the second time"


def test_a_failed_install_shows_pips_words_and_where_the_log_is(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # A pip that fails as it does when a package cannot be found.
    [site] = venv.glob("lib/python3.11/site-packages")
    (site / "pip" / "__main__.py").write_text(
        "import sys\nprint('ERROR: no matching distribution for temporalio', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    failed = set_up(venv)
    assert failed.returncode == 1
    assert "ERROR: no matching distribution for temporalio" in failed.stderr
    assert f"installing the project into {venv} failed (the whole log: {venv}/install.log)" in (
        failed.stderr
    )
