"""Faults the local Linear server can be told to inject, and the answers they produce.

A fault applies to the next `times` requests to /graphql (or only to those of one operation),
before authentication, in the order the faults were added. Rate limits answer the way Linear
does, with its headers (`X-RateLimit-Requests-Limit`, `-Remaining: 0`, `-Reset` in epoch
milliseconds, and `Retry-After` in seconds).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from .local_errors import rate_limited_error, server_error

RateLimitForm = Literal["http429", "ratelimited400"]
REQUESTS_PER_HOUR = 5000  # Linear's request budget for an API key


@dataclass
class Fault:
    kind: Literal["rate_limit", "fail", "slow"]
    times: int
    operation: str | None = None
    form: RateLimitForm = "http429"
    reset_in_seconds: float = 60.0
    status: int = 500
    seconds: float = 0.0
    after: bool = False  # slow: carry the request out first, then hold the answer back

    def applies_to(self, operation: str) -> bool:
        return self.times > 0 and self.operation in (None, operation)


class Faults:
    """The queue of faults still to inject."""

    def __init__(self) -> None:
        self._queue: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        if fault.kind == "rate_limit" and fault.form not in ("http429", "ratelimited400"):
            raise ValueError('form must be "http429" or "ratelimited400"')
        if fault.kind == "fail" and not 400 <= fault.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._queue.append(fault)

    def take(self, operation: str) -> Fault | None:
        """The fault the next request of `operation` gets, if any (used up one time)."""
        for fault in self._queue:
            if fault.applies_to(operation):
                fault.times -= 1
                if fault.times == 0:
                    self._queue.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._queue.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [dict(vars(fault)) for fault in self._queue]


def rate_limit_headers(remaining: int, reset_ms: int) -> dict[str, str]:
    return {
        "X-RateLimit-Requests-Limit": str(REQUESTS_PER_HOUR),
        "X-RateLimit-Requests-Remaining": str(max(0, remaining)),
        "X-RateLimit-Requests-Reset": str(reset_ms),
    }


def rate_limited(fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Linear's rate-limit answer: HTTP 429, or HTTP 400 with `RATELIMITED` (both carry the
    `RATELIMITED` code and the reset headers)."""
    status = 429 if fault.form == "http429" else 400
    reset_ms = int((time.time() + fault.reset_in_seconds) * 1000)
    headers = rate_limit_headers(0, reset_ms)
    headers["Retry-After"] = str(max(0, math.ceil(fault.reset_in_seconds)))
    return status, {"errors": [rate_limited_error(status, REQUESTS_PER_HOUR)]}, headers


def failed(fault: Fault) -> tuple[int, dict[str, Any]]:
    return fault.status, {"errors": [server_error(fault.status)]}
