"""Registration tokens in PostgreSQL: only the hash is kept; a use is counted; expired, revoked
and unknown tokens are refused with a reason for the log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest

from store import FleetStore, RegistrationRefused
from workers.fleet import issue_registration_token, registration_token_hash


async def test_a_token_is_stored_as_a_hash_and_its_uses_counted(pool: asyncpg.Pool) -> None:
    store = FleetStore(pool)
    token = issue_registration_token()
    token_id = await store.add_registration_token(
        "acme", "p1", token.hash, token.prefix, timedelta(days=30)
    )
    stored = await pool.fetchrow("SELECT * FROM registration_tokens WHERE id = $1", token_id)
    assert stored is not None
    assert token.plaintext not in [str(v) for v in dict(stored).values()], "never the token"
    first = await store.redeem(registration_token_hash(token.plaintext))
    second = await store.redeem(token.hash)
    assert (first.id, first.org_id, first.project_id) == (token_id, "acme", "p1")
    assert (first.uses, second.uses) == (1, 2)
    assert await store.registration_valid(token_id)


async def test_expired_revoked_and_unknown_tokens_are_refused(pool: asyncpg.Pool) -> None:
    store = FleetStore(pool)
    expired = issue_registration_token()
    await store.add_registration_token("acme", "p1", expired.hash, expired.prefix, -timedelta(1))
    with pytest.raises(RegistrationRefused, match="has expired") as err:
        await store.redeem(expired.hash)
    assert expired.plaintext not in err.value.reason and expired.prefix in err.value.reason

    revoked = issue_registration_token()
    token_id = await store.add_registration_token(
        "acme", "p1", revoked.hash, revoked.prefix, timedelta(days=1)
    )
    assert await store.revoke(token_id) and not await store.revoke(token_id)
    with pytest.raises(RegistrationRefused, match="was revoked"):
        await store.redeem(revoked.hash)
    assert not await store.registration_valid(token_id), "a refresh would be refused"

    with pytest.raises(RegistrationRefused, match="unknown registration token"):
        await store.redeem(registration_token_hash(f"rsp_live_{uuid.uuid4()}"))
