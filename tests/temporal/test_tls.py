"""Connecting as Temporal's own tools do: the dev server behind a TLS proxy that requires a
client certificate (certificates made here), reached by a worker and the CLI through
TEMPORAL_TLS_* settings, and refused without the certificate; a profile file's API key."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.test_cli import DURABLE, durable
from workers.embedded import EmbeddedTemporal, free_port
from workers.runtime import temporal_connect_config
from workers.settings import Settings


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def make_pki(root: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("durable test CA", ca_key, None, ca=True)
    files: dict[str, bytes] = {"ca.pem": ca.public_bytes(serialization.Encoding.PEM)}
    for who, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"durable test {who}", key, (ca.subject, ca_key), server=server)
        files[f"{who}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{who}-key.pem"] = _key_pem(key)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return Pki(
        root / "ca.pem",
        root / "server.pem",
        root / "server-key.pem",
        root / "client.pem",
        root / "client-key.pem",
    )


@contextlib.asynccontextmanager
async def mtls_proxy(pki: Pki, upstream: str) -> AsyncIterator[str]:
    """A TLS front for `upstream` that requires a client certificate signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))

    listen = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", listen, ssl=context)
    try:
        yield f"127.0.0.1:{listen}"
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


async def test_a_worker_and_the_cli_run_a_workflow_through_mtls_and_are_refused_without(
    dev_server: EmbeddedTemporal,
    database_url: str,
    pool: asyncpg.Pool,
    task_queue: str,
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    async with mtls_proxy(pki, dev_server.address) as address:
        tls = {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.ca),
            "TEMPORAL_TLS_SERVER_NAME": "localhost",
            "DATABASE_URL": database_url,
            "DURABLE_TASK_QUEUE": task_queue,
            "DURABLE_DATA_DIR": str(tmp_path / "data"),
        }
        with_cert = {
            **tls,
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(pki.client_cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(pki.client_key),
        }
        code, _, err = await durable("workflows", "--json", env=tls)
        assert code == 0, "listing needs no server"
        code, _, err = await durable("status", "no-such-run", env=tls)
        assert code == 4 and f"cannot reach Temporal at {address}" in err, err
        assert "TLS or API key" in err

        worker = await asyncio.create_subprocess_exec(
            DURABLE,
            "worker",
            env={**os.environ, **with_cert},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            code, out, err = await durable("start", "rensei/example.run", "--wait", env=with_cert)
            assert code == 0, err
            assert '"parts": 3' in out, "the run went through the proxy, both ways"
        finally:
            worker.terminate()
            await asyncio.wait_for(worker.wait(), 60)


def test_a_profile_files_api_key_and_tls_reach_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        '[profile.cloud]\naddress = "acme.a1b2c.tmprl.cloud:7233"\n'
        'namespace = "acme.a1b2c"\napi_key = "secret-api-key"\n'
    )
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(profile))
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    config = temporal_connect_config(Settings())
    assert config["target_host"] == "acme.a1b2c.tmprl.cloud:7233"
    assert config["namespace"] == "acme.a1b2c"
    assert config["api_key"] == "secret-api-key"
    assert config.get("tls"), "an API key is sent over TLS, as Temporal Cloud expects"
    embedded = temporal_connect_config(Settings(), embedded=True)
    assert "api_key" not in embedded, "durable dev's own server reads no profile"
