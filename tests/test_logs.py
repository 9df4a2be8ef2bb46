"""What the product's processes log: HTTP clients' per-request lines only at debug level, so
`durable dev`'s instructions are not buried under them."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Logs like a composition root does, then as httpx does for every request it sends.
SCRIPT = """
import logging, sys
from workers import logs
logs.configure("json", sys.argv[1])
logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1:8500/graphql 200 OK")
logging.getLogger("httpx").warning("httpx warning")
logging.getLogger("durable.demo").info("product line")
logging.getLogger("durable.demo").debug("product detail")
"""


def logged(level: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, level], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_http_request_lines_are_quiet_unless_debug() -> None:
    info = logged("info")
    assert "HTTP Request" not in info, "no per-request lines by default"
    assert "httpx warning" in info and "product line" in info
    assert "product detail" not in info

    debug = logged("DEBUG")
    assert "HTTP Request: POST" in debug and "product detail" in debug


def test_an_unknown_level_is_refused_with_the_accepted_names() -> None:
    from workers.logs import level_named

    with pytest.raises(ValueError, match="must be one of debug, info, warning, not 'loud'"):
        level_named("loud")
