"""Retry policy for steps, provider-neutral."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._duration import Duration, parse_duration


class RetryPolicy(BaseModel):
    """How a failing step is retried.

    Attributes:
        max_attempts: Total attempts including the first; 0 means retry until the step's timeout.
        initial_interval: Delay before the first retry.
        backoff: Multiplier applied to the delay after each retry.
        max_interval: Upper bound of the delay between retries.
        non_retryable: Error kinds (exception class names, or `NonRetryableError.kind`) that fail
            the step at once.
    """

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=5, ge=0)
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = Field(default=2.0, ge=1.0)
    max_interval: timedelta = timedelta(minutes=1)
    non_retryable: tuple[str, ...] = ()

    @field_validator("initial_interval", "max_interval", mode="before")
    @classmethod
    def _duration(cls, value: Duration) -> timedelta:
        return parse_duration(value)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
