"""Durations written the way people say them: "30s", "30m", "24h", "7d", or a timedelta."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, TypeAlias

from pydantic import AfterValidator

from ._errors import InvalidDuration

Duration: TypeAlias = str | timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_duration(value: Duration) -> timedelta:
    """Turn "30s", "30m", "24h", "7d", "1h30m" or a timedelta into a positive timedelta.

    Raises:
        InvalidDuration: the value is not a positive duration in one of those forms.
    """
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidDuration(f"duration must be positive, got {value!r}")
        return value
    if not isinstance(value, str):
        raise InvalidDuration(
            f"duration must be a string like '30s', '30m', '24h', '7d' or a timedelta, "
            f"got {type(value).__name__}"
        )
    text = value.strip().lower()
    if not _WHOLE.fullmatch(text):
        raise InvalidDuration(
            f"cannot read {value!r} as a duration: use a number and a unit "
            f"(ms, s, m, h, d, w), e.g. '30s', '30m', '24h', '7d' or '1h30m'"
        )
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    if seconds <= 0:
        raise InvalidDuration(f"duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def _checked(value: str) -> str:
    try:
        parse_duration(value)
    except InvalidDuration:
        # Not the value itself: the message may end up in a run's failure, in clear.
        raise ValueError(
            "not a positive duration: use a number and a unit, e.g. '30s', '30m', '24h', '7d'"
        ) from None
    return value


# A model field holding a duration as text ("30m"): a value that cannot be one, or is not
# positive, is refused where the model is validated (at ingress), not when a run uses it.
DurationText = Annotated[str, AfterValidator(_checked)]
