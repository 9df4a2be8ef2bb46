"""Fixtures for tests that talk to Linear: a real local Linear-compatible server on 127.0.0.1.

    async def test_something(local_linear: LocalLinear) -> None:
        client = LinearClient(TEST_ORG, LinearCredential(TEST_KEY), local_linear.url)
        ...
        assert local_linear.calls("CreateIssue") == 1
        assert len(local_linear.state()["issues"]) == 11

- `local_linear` (function scope): a started `LocalLinear` with a freshly seeded workspace for
  org `TEST_ORG`, accepting the API key `TEST_KEY` (`Authorization: lin_api_test`, acting as
  the first user) and the OAuth token `TEST_TOKEN` (`Authorization: Bearer lin_oauth_test`,
  acting as the app user); stopped after the test. Its `url` is the GraphQL endpoint; see
  `activities/linear/local_server.py` for `state()`, `calls()`, `rate_limit()`, `fail()`,
  `slow()`, `revoke()`, `open_agent_session()` and the exact error shapes.

Linear's schema ships inside the package (`activities/linear/schema/`), so nothing here skips:
a missing schema is a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from activities.linear.local_server import LocalLinear

TEST_ORG = "org-acme"
TEST_KEY = "lin_api_test"
TEST_TOKEN = "lin_oauth_test"


@pytest.fixture
async def local_linear() -> AsyncIterator[LocalLinear]:
    async with LocalLinear(keys={TEST_KEY: TEST_ORG}, tokens={TEST_TOKEN: TEST_ORG}) as server:
        yield server
