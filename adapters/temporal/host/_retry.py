"""Map the neutral retry policy onto Temporal's."""

from __future__ import annotations

from temporalio.common import RetryPolicy as TemporalRetryPolicy

from durable import NonRetryableError, RetryPolicy

# Error kinds that no retry can fix, whatever the step's policy says.
ALWAYS_NON_RETRYABLE = (NonRetryableError.__name__, "InputValidationError", "ValidationError")


def to_temporal(policy: RetryPolicy) -> TemporalRetryPolicy:
    return TemporalRetryPolicy(
        initial_interval=policy.initial_interval,
        backoff_coefficient=policy.backoff,
        maximum_interval=policy.max_interval,
        maximum_attempts=policy.max_attempts,
        non_retryable_error_types=[*ALWAYS_NON_RETRYABLE, *policy.non_retryable],
    )
