"""Registration tokens in PostgreSQL: only the hash is kept; a use is counted; expired, revoked
and unknown tokens are refused with a reason for the log."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import timedelta

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from store import FleetStore, RegistrationRefused
from workers.fleet import issue_registration_token, registration_token_hash
from workers.fleet.admin import runtime_keys
from workers.settings import Settings

ENCRYPTION_KEY = base64.b64encode(secrets.token_bytes(32)).decode()


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
    assert await store.registration_valid(token_id, org_id="acme")


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
    assert await store.revoke(token_id, org_id="acme")
    assert not await store.revoke(token_id, org_id="acme")
    with pytest.raises(RegistrationRefused, match="was revoked"):
        await store.redeem(revoked.hash)
    assert not await store.registration_valid(token_id, org_id="acme"), "a refresh would be refused"

    with pytest.raises(RegistrationRefused, match="unknown registration token"):
        await store.redeem(registration_token_hash(f"rsp_live_{uuid.uuid4()}"))


async def test_the_signing_key_is_shared_by_api_instances_or_given_in_pem(
    pool: asyncpg.Pool,
) -> None:
    store = FleetStore(pool)
    # The key kept in Postgres is encrypted under DURABLE_FLEET_KEY_ENCRYPTION_KEY, which every
    # instance is given (tests/fleet/test_signing_keys.py: what the table alone is worth).
    sealed = Settings(fleet_key_encryption_key=SecretStr(ENCRYPTION_KEY))
    one, two = await runtime_keys(sealed, store), await runtime_keys(sealed, store)
    token, _ = one.mint(project="p", org="o", worker="w", registration="r")
    assert two.verify(token).sub == "w", "a second API instance verifies the first one's tokens"

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    given = await runtime_keys(Settings(fleet_signing_key=SecretStr(pem)), store)
    again = await runtime_keys(Settings(fleet_signing_key=SecretStr(pem)), store)
    assert given.jwks() == again.jwks() != one.jwks()
    for bad in (
        "not a key",
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode(),
    ):
        with pytest.raises(ValueError, match="must be an unencrypted P-256"):
            await runtime_keys(Settings(fleet_signing_key=SecretStr(bad)), store)
