"""Connecting as Temporal's own tools do: the dev server behind a TLS proxy that requires a
client certificate (certificates made here), reached by a worker and the CLI through
TEMPORAL_TLS_* settings or a profile file, and refused without the certificate; a profile's API
key, as the proxy sees it arrive."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.test_cli import DURABLE, durable, worker_process
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


class Requests:
    """The gRPC requests' headers a client sent through the proxy, decoded from its HTTP/2
    stream as the server would (the proxy only watches; every byte is passed on)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def watcher(self) -> Callable[[bytes], None]:
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, validate_inbound_headers=False)
        )
        conn.initiate_connection()
        broken = False

        def watch(data: bytes) -> None:
            nonlocal broken
            if broken:
                return
            try:
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        self.headers.append({_text(k): _text(v) for k, v in event.headers or []})
                    elif isinstance(event, h2.events.DataReceived) and event.stream_id:
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
            except h2.exceptions.H2Error:
                broken = True  # stop watching; the bytes still pass

        return watch


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@contextlib.asynccontextmanager
async def mtls_proxy(
    pki: Pki, upstream: str, *, client_cert: bool = True, requests: Requests | None = None
) -> AsyncIterator[str]:
    """A TLS front for `upstream` that requires a client certificate signed by the test CA
    (with `client_cert`; else TLS only, as Temporal Cloud's API-key endpoints are), recording
    each request's headers in `requests`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED if client_cert else ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    host, port = upstream.rsplit(":", 1)

    async def pipe(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        watch: Callable[[bytes], None] | None = None,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if watch is not None:
                    watch(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(host, int(port))
        watch = requests.watcher() if requests is not None else None
        await asyncio.gather(pipe(client_r, up_w, watch), pipe(up_r, client_w))

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

        async with worker_process(with_cert):
            code, out, err = await durable("start", "rensei/example.run", "--wait", env=with_cert)
            assert code == 0, err
            assert '"parts": 3' in out, "the run went through the proxy, both ways"


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


def write_profile(path: Path, address: str, pki: Pki, **extra: str) -> Path:
    """A `temporal` CLI profile file with one profile, `prod`: the address, the server's CA and
    name, and `extra` in its tls table (client_cert_path, client_key_path) or, for `api_key`,
    in the profile itself."""
    api_key = extra.pop("api_key", None)
    lines = ["[profile.prod]", f'address = "{address}"', 'namespace = "default"']
    if api_key is not None:
        lines.append(f'api_key = "{api_key}"')
    lines += [
        "[profile.prod.tls]",
        f'server_ca_cert_path = "{pki.ca}"',
        'server_name = "localhost"',
        *(f'{key} = "{value}"' for key, value in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_one_profile_file_takes_a_worker_and_the_cli_through_mtls(
    dev_server: EmbeddedTemporal, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """No TEMPORAL_ADDRESS, no TEMPORAL_TLS_*: only TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE,
    as a user of the `temporal` CLI has them. Without the client certificate in the profile,
    the worker stops at once saying it cannot reach Temporal and what to check."""
    pki = make_pki(tmp_path)
    async with mtls_proxy(pki, dev_server.address) as address:
        base = {
            "TEMPORAL_PROFILE": "prod",
            "DATABASE_URL": database_url,
            "DURABLE_TASK_QUEUE": task_queue,
            "DURABLE_DATA_DIR": str(tmp_path / "data"),
        }
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        no_cert = {
            **clean,
            **base,
            "TEMPORAL_CONFIG_FILE": str(write_profile(tmp_path / "no-cert.toml", address, pki)),
        }
        refused = await asyncio.create_subprocess_exec(
            DURABLE,
            "worker",
            env=no_cert,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, said = await asyncio.wait_for(refused.communicate(), 60)
        assert refused.returncode == 4, said.decode()
        assert f"cannot reach Temporal at {address}" in said.decode()
        assert "TLS or API key settings of your profile" in said.decode()

        profile = write_profile(
            tmp_path / "mtls.toml",
            address,
            pki,
            client_cert_path=str(pki.client_cert),
            client_key_path=str(pki.client_key),
        )
        env = {**clean, **base, "TEMPORAL_CONFIG_FILE": str(profile)}
        async with worker_process(env):
            code, out, err = await durable("start", "rensei/example.run", "--wait", env=env)
            assert code == 0, err
            assert '"parts": 3' in out, "worker and CLI both went through the proxy"


async def test_an_api_key_profile_sends_the_key_as_temporal_expects(
    dev_server: EmbeddedTemporal, tmp_path: Path
) -> None:
    """Over TLS, as `authorization: Bearer <key>` on every call, which the proxy checks."""
    pki = make_pki(tmp_path)
    requests = Requests()
    async with mtls_proxy(pki, dev_server.address, client_cert=False, requests=requests) as at:
        profile = write_profile(tmp_path / "cloud.toml", at, pki, api_key="tmprl-test-key")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        env |= {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "prod"}
        code, _, err = await durable("status", "no-such-run", env=env)
    assert code == 3 and "no-such-run" in err, err
    assert requests.headers, "the CLI's calls went through the proxy"
    for headers in requests.headers:
        assert headers.get("authorization") == "Bearer tmprl-test-key", headers
        assert headers[":path"].startswith("/temporal.api.workflowservice.v1.WorkflowService/")
