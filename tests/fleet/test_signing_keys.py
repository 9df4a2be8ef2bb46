"""The runtime JWT signing key at rest: kept encrypted under a key that is never in the
database, so the table alone mints nothing the API accepts; a production API with no key
configured refuses to start; the embedded stack keeps its own encryption key owner-only; a key
stored in clear before is encrypted in place. Each test has a database of its own."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import secrets
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError
from starlette.applications import Starlette

from api.fleet import FleetApi, fleet_api
from store import FleetStore, create_pool, migrate
from workers.fleet import RuntimeKeys, TokenRejected
from workers.fleet.admin import create_registration_token, runtime_keys
from workers.settings import Settings

ENCRYPTION_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
ORG, PROJECT = "acme", "atlas"


@pytest.fixture(autouse=True)
def _no_fleet_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DURABLE_FLEET_SIGNING_KEY", "DURABLE_FLEET_KEY_ENCRYPTION_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fresh(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A database of its own (its fleet_signing_keys empty), migrated, and its URL."""
    name = f"keys_{uuid.uuid4().hex[:12]}"
    await pool.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    own = await create_pool(url)
    try:
        await migrate(own)
        yield own, url
    finally:
        await own.close()
        await pool.execute(f"DROP DATABASE {name} WITH (FORCE)")


def production(url: str, **kwargs: object) -> Settings:
    return Settings(database_url=SecretStr(url), **kwargs)  # type: ignore[arg-type]


def encrypted(url: str, key: str = ENCRYPTION_KEY) -> Settings:
    return production(url, fleet_key_encryption_key=SecretStr(key))


def client(api: FleetApi) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=Starlette(routes=api.routes()))
    return httpx.AsyncClient(transport=transport, base_url="http://fleet")


async def registered(api: FleetApi, http: httpx.AsyncClient) -> tuple[str, str]:
    """A worker registered through the API: its id and runtime JWT."""
    if not await api.fleet.pools(ORG):
        await api.fleet.create_pool(ORG, "local-a", "local")
    created = await create_registration_token(api.fleet, ORG, PROJECT, "local-a")
    response = await http.post(
        "/api/workers/register",
        headers={"authorization": f"Bearer {created.token.plaintext}"},
        json={"maxConcurrency": 1, "capabilities": ["local"]},
    )
    assert response.status_code == 201, response.text
    return response.json()["workerId"], response.json()["runtimeJwt"]


def keys_a_table_reader_could_make(kid: str, stored: bytes) -> list[ec.EllipticCurvePrivateKey]:
    """Every key the stored value could be read as: PEM (as is, or base64-decoded), or any 32
    bytes of it as the private scalar. None must sign for the API."""
    made: list[ec.EllipticCurvePrivateKey] = []
    candidates = [stored]
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(stored, validate=True))
    for candidate in candidates:
        try:
            key = serialization.load_pem_private_key(candidate, password=None)
        except (ValueError, TypeError):
            continue
        assert not isinstance(key, ec.EllipticCurvePrivateKey), f"{kid}: the table holds a PEM"
    for start in range(len(stored) - 31):
        scalar = int.from_bytes(stored[start : start + 32], "big")
        try:
            made.append(ec.derive_private_key(scalar, ec.SECP256R1()))
        except ValueError:  # not a scalar of the curve
            continue
    return made


async def test_the_stored_key_alone_signs_nothing_the_api_accepts(
    fresh: tuple[asyncpg.Pool, str], caplog: pytest.LogCaptureFixture
) -> None:
    own, url = fresh
    one = await fleet_api(encrypted(url), own)
    two = await fleet_api(encrypted(url), own)
    async with client(one) as http_one, client(two) as http_two:
        worker_id, token = await registered(one, http_one)
        # Instances with the same encryption key agree on the key: the second verifies the
        # first one's token.
        beat = await http_two.post(
            f"/api/workers/{worker_id}/heartbeat", headers={"authorization": f"Bearer {token}"}
        )
        assert beat.status_code == 200, beat.text
        assert one.keys.jwks() == two.keys.jwks()

        [row] = await own.fetch("SELECT kid, private_key, encrypted FROM fleet_signing_keys")
        kid, stored = row["kid"], bytes(row["private_key"])
        assert row["encrypted"] and len(stored) > 32
        claims = one.keys.verify(token).model_dump()
        made = keys_a_table_reader_could_make(kid, stored)
        assert made, "some 32-byte windows are scalars: each must be tried"
        for key in made:
            forged = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})
            caplog.clear()
            with caplog.at_level(logging.WARNING, "durable.fleet.api"):
                refused = await http_two.post(
                    f"/api/workers/{worker_id}/heartbeat",
                    headers={"authorization": f"Bearer {forged}"},
                )
            assert (refused.status_code, refused.json()) == (401, {"error": "unauthorized"})
            assert [getattr(r, "reason", "") for r in caplog.records] == [
                "runtime JWT refused: bad signature"
            ]

    # Without the right encryption key the API does not start (it would sign with another key).
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(ValueError, match="does not decrypt with DURABLE_FLEET_KEY_ENCRYPTION_KEY"):
        await fleet_api(encrypted(url, other), own)


async def test_with_neither_key_a_production_api_refuses_to_start_naming_both(
    fresh: tuple[asyncpg.Pool, str],
) -> None:
    own, url = fresh
    with pytest.raises(ValueError, match="DURABLE_FLEET_SIGNING_KEY") as err:
        await fleet_api(production(url), own)
    assert "DURABLE_FLEET_SIGNING_KEY" in str(err.value)
    assert "DURABLE_FLEET_KEY_ENCRYPTION_KEY" in str(err.value)
    assert await own.fetchval("SELECT count(*) FROM fleet_signing_keys") == 0, "nothing stored"


async def test_the_embedded_stack_keeps_its_encryption_key_owner_only_in_the_data_dir(
    fresh: tuple[asyncpg.Pool, str], tmp_path: Path
) -> None:
    """`durable dev` (no DATABASE_URL) sets neither variable: it still starts, with a key of
    its own in DURABLE_DATA_DIR, so even there the table alone is not enough."""
    own, _ = fresh
    dev = Settings(data_dir=tmp_path / "data")
    assert dev.database_url is None
    first = await runtime_keys(dev, FleetStore(own))
    key_file = tmp_path / "data" / "fleet-key-encryption"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.chmod(0o644)
    again = await runtime_keys(dev, FleetStore(own))
    assert again.jwks() == first.jwks() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token, _ = first.mint(project="p", org="o", worker="w", registration="r")
    assert again.verify(token).sub == "w"
    [row] = await own.fetch("SELECT kid, private_key, encrypted FROM fleet_signing_keys")
    assert row["encrypted"]
    for key in keys_a_table_reader_could_make(row["kid"], bytes(row["private_key"])):
        stranger = RuntimeKeys(
            [(row["kid"], key)], issuer=dev.fleet_issuer, audience=dev.fleet_audience
        )
        forged, _ = stranger.mint(project="p", org="o", worker="w", registration="r")
        with pytest.raises(TokenRejected, match="bad signature"):
            first.verify(forged)


async def test_a_key_stored_in_clear_is_encrypted_in_place(
    fresh: tuple[asyncpg.Pool, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A row from before keys were encrypted: the first API instance with an encryption key
    encrypts it in place (tokens it signed stay valid) and warns that it should be rotated."""
    own, url = fresh
    scalar = secrets.token_bytes(32)
    await own.execute(
        "INSERT INTO fleet_signing_keys (kid, private_key) VALUES ('old', $1)", scalar
    )
    before = RuntimeKeys(
        [("old", ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1()))],
        issuer="durable",
        audience="durable-workers",
    )
    token, _ = before.mint(project="p", org="o", worker="w", registration="r")
    with caplog.at_level(logging.WARNING, "durable.fleet"):
        keys = await runtime_keys(encrypted(url), FleetStore(own))
    assert keys.jwks() == before.jwks() and keys.verify(token).sub == "w"
    [row] = await own.fetch("SELECT kid, private_key, encrypted FROM fleet_signing_keys")
    assert row["encrypted"] and scalar not in bytes(row["private_key"])
    assert "stored in clear" in caplog.text and "rotate" in caplog.text
    # Nothing to migrate the next time.
    caplog.clear()
    with caplog.at_level(logging.WARNING, "durable.fleet"):
        again = await runtime_keys(encrypted(url), FleetStore(own))
    assert again.jwks() == before.jwks() and "stored in clear" not in caplog.text


def test_a_bad_encryption_key_fails_at_startup_naming_the_variable_not_the_value() -> None:
    for bad in ("not base64!", base64.b64encode(b"16 bytes only...").decode()):
        with pytest.raises(ValidationError) as err:
            Settings(fleet_key_encryption_key=SecretStr(bad))
        assert "DURABLE_FLEET_KEY_ENCRYPTION_KEY" in str(err.value) and bad not in str(err.value)
    urlsafe = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    assert Settings(fleet_key_encryption_key=SecretStr(urlsafe)).fleet_key_encryption_key
