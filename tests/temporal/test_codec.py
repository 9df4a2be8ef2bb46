"""Payload encryption on a real dev server: a secret that goes through a run is nowhere in the
history the server keeps, keys rotate without stranding runs in flight, and the codec endpoint
lets the UI and the `temporal` CLI show an operator the plaintext."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from google.protobuf import json_format
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from adapters.temporal import (
    AesGcmCodec,
    PayloadDecryptionError,
    TemporalDurableClient,
    UnknownEncryptionKey,
    build_worker,
    ensure_search_attributes,
    parse_codec_keys,
)
from api import create_app
from api.codec import codec_routes_for
from api.server import ApiServer
from store import EventStore
from workers.embedded import EmbeddedTemporal, free_port
from workers.runtime import connect_temporal, payload_codec, settings_data_converter
from workers.settings import Settings

from .codec_workflows import REGISTRY, Revealed, Secret, carry_secret
from .test_adapter import BIN, temporal_cli

ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def settings(server: EmbeddedTemporal, keys: dict[str, str], **env: str) -> Settings:
    """Settings as a worker would read them, with DURABLE_CODEC_KEYS in the given order."""
    spec = ",".join(f"{key_id}:{key}" for key_id, key in keys.items())
    values: dict[str, Any] = {"TEMPORAL_ADDRESS": server.address, "DURABLE_CODEC_KEYS": spec}
    return Settings(**values | env)


def leaks(exported: str, canary: str) -> list[str]:
    """Where `canary` shows in an exported history: in clear, or in any base64 string."""
    found = ["(in clear)"] if canary in exported else []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str):
            try:
                raw = base64.b64decode(node, validate=True)
            except ValueError:
                return
            if canary.encode() in raw:
                found.append(path)

    walk(json.loads(exported), "")
    return found


def key_id(payload: Payload) -> str:
    assert payload.metadata["encoding"] == b"binary/encrypted"
    return payload.metadata["encryption-key-id"].decode()


def first(history: WorkflowHistory, event_type: int) -> Any:
    return next(e for e in history.events if e.event_type == event_type)


@pytest.fixture
async def dev(dev_client: Client) -> Client:
    await ensure_search_attributes(dev_client, create=True)
    return dev_client


async def run_canary(client: Client, task_queue: str) -> tuple[str, str, Revealed]:
    """Run the secret-carrying workflow with a worker on `client`; (run id, canary, output)."""
    canary = f"canary-{uuid.uuid4().hex}"
    async with build_worker(client, REGISTRY, task_queue):
        durable_client = TemporalDurableClient(client, REGISTRY, task_queue)
        handle = await durable_client.start(carry_secret, Secret(canary=canary))
        out = await handle.result()
    return handle.workflow_id, canary, out


async def test_a_canary_secret_appears_nowhere_in_the_exported_history(
    dev_server: EmbeddedTemporal, dev: Client, task_queue: str
) -> None:
    client = await connect_temporal(settings(dev_server, {"k1": new_key()}))
    run_id, canary, out = await run_canary(client, task_queue)
    # A client with the codec reads the result with the secret intact ...
    assert out == Revealed(given=canary, from_step=f"the step saw {canary}")
    assert await TemporalDurableClient(client, REGISTRY, task_queue).get(run_id).result() == out
    # ... while the history the server keeps has it nowhere, in clear or base64-encoded.
    exported = (await dev.get_workflow_handle(run_id).fetch_history()).to_json()
    assert leaks(exported, canary) == []
    assert ENCRYPTED in exported

    # The same run without a codec: the check above does find the secret when it is there.
    plain_id, plain_canary, _ = await run_canary(dev, f"{task_queue}-plain")
    plain = (await dev.get_workflow_handle(plain_id).fetch_history()).to_json()
    assert leaks(plain, plain_canary)


async def test_keys_rotate_without_stranding_runs_started_with_the_old_key(
    dev_server: EmbeddedTemporal, dev: Client, task_queue: str
) -> None:
    k1, k2 = new_key(), new_key()
    old = await connect_temporal(settings(dev_server, {"k1": k1}))
    rotated = await connect_temporal(settings(dev_server, {"k2": k2, "k1": k1}))
    only_new = await connect_temporal(settings(dev_server, {"k2": k2}))
    canary = f"canary-{uuid.uuid4().hex}"
    # Started before the rotation (no worker yet), finished by a worker that has both keys.
    handle = await TemporalDurableClient(old, REGISTRY, task_queue).start(
        carry_secret, Secret(canary=canary)
    )
    async with build_worker(rotated, REGISTRY, task_queue):
        out = (
            await TemporalDurableClient(rotated, REGISTRY, task_queue)
            .get(handle.workflow_id)
            .result()
        )
    assert out.given == canary

    history = await dev.get_workflow_handle(handle.workflow_id).fetch_history()
    started = first(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    scheduled = first(history, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    stepped = first(history, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    completed = first(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
    assert key_id(started.workflow_execution_started_event_attributes.input.payloads[0]) == "k1"
    # Everything written after the rotation uses the new key.
    assert key_id(scheduled.activity_task_scheduled_event_attributes.input.payloads[0]) == "k2"
    assert key_id(stepped.activity_task_completed_event_attributes.result.payloads[0]) == "k2"
    assert key_id(completed.workflow_execution_completed_event_attributes.result.payloads[0]) == (
        "k2"
    )

    # With the old key retired, what k2 wrote still reads; what k1 wrote is a clear error.
    assert await TemporalDurableClient(only_new, REGISTRY, task_queue).get(
        handle.workflow_id
    ).result() == (out)
    old_input = list(started.workflow_execution_started_event_attributes.input.payloads)
    with pytest.raises(UnknownEncryptionKey) as caught:
        await only_new.data_converter.decode(old_input, [Secret])
    message = str(caught.value)
    assert "key id 'k1'" in message
    assert "configured key ids: 'k2'" in message
    assert k1 not in message and k2 not in message


async def test_the_codec_leaves_plain_payloads_alone_and_refuses_altered_ones() -> None:
    codec = AesGcmCodec(parse_codec_keys(f"k1:{new_key()}"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')
    assert await codec.decode([plain]) == [plain]  # runs from before encryption stay readable
    (sealed,) = await codec.encode([plain])
    assert sealed.data != plain.data and b"hello" not in sealed.data
    assert await codec.decode([sealed]) == [plain]
    (again,) = await codec.encode([plain])
    assert again.data[:12] != sealed.data[:12], "every payload gets a fresh nonce"

    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec.decode([tampered])
    # The key id is bound to the ciphertext: relabelling a payload does not get it through.
    other = AesGcmCodec(parse_codec_keys(f"k2:{new_key()},k1:{new_key()}"))
    with pytest.raises(PayloadDecryptionError, match="'k1' failed authentication"):
        await other.decode([sealed])
    assert "secret" not in repr(codec) and repr(codec) == "AesGcmCodec(key_ids=('k1',))"


# --- the codec endpoint -------------------------------------------------------------------


def call(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, got, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, got, raw = err.code, err.headers, err.read()
    is_json = got.get("content-type") == "application/json"
    return status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if is_json else {}


@asynccontextmanager
async def codec_server(client: Client, pool: asyncpg.Pool, config: Settings) -> AsyncIterator[str]:
    app = create_app(
        TemporalDurableClient(client, REGISTRY, "unused"),
        REGISTRY,
        EventStore(pool),
        codec_routes=codec_routes_for(config),
    )
    server = ApiServer(app, free_port())
    await server.start()
    try:
        yield f"{server.address}/codec"
    finally:
        await server.stop()


def as_json(payloads: list[Payload]) -> bytes:
    return json.dumps({"payloads": [json_format.MessageToDict(p) for p in payloads]}).encode()


async def test_the_codec_endpoint_shows_an_operator_the_plaintext(
    dev_server: EmbeddedTemporal, dev: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    token = uuid.uuid4().hex
    config = settings(dev_server, {"k1": new_key()}, DURABLE_CODEC_TOKEN=token)
    client = await connect_temporal(config)
    run_id, canary, _ = await run_canary(client, task_queue)
    history = await dev.get_workflow_handle(run_id).fetch_history()
    started = first(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    stored = list(started.workflow_execution_started_event_attributes.input.payloads)
    auth = {"content-type": "application/json", "authorization": f"Bearer {token}"}

    async with codec_server(client, pool, config) as endpoint:
        # What the UI does with a payload from the history: decode it to the plaintext.
        status, _, body = await asyncio.to_thread(
            call, "POST", f"{endpoint}/decode", as_json(stored), auth | {"x-namespace": "default"}
        )
        assert status == 200, body
        (decoded,) = body["payloads"]
        assert base64.b64decode(decoded["metadata"]["encoding"]) == b"json/plain"
        assert json.loads(base64.b64decode(decoded["data"])) == {"canary": canary}

        # Encode then decode gives back what went in; encode really encrypts.
        plain = [Payload(metadata={"encoding": b"json/plain"}, data=b'{"note": "hi"}')]
        status, _, encoded = await asyncio.to_thread(
            call, "POST", f"{endpoint}/encode", as_json(plain), auth
        )
        assert status == 200, encoded
        assert encoded["payloads"][0]["metadata"]["encoding"] == ENCRYPTED
        status, _, round_trip = await asyncio.to_thread(
            call, "POST", f"{endpoint}/decode", json.dumps(encoded).encode(), auth
        )
        assert status == 200, round_trip
        assert round_trip == json.loads(as_json(plain))
        status, _, empty = await asyncio.to_thread(
            call, "POST", f"{endpoint}/decode", b'{"payloads": []}', auth
        )
        assert (status, empty) == (200, {"payloads": []})

        # The `temporal` CLI, pointed at the endpoint, shows the history decoded.
        args = ["workflow", "show", "--address", dev_server.address, "--workflow-id", run_id]
        code, shown = await temporal_cli(
            *args, "--output", "json", "--codec-endpoint", endpoint,
            "--codec-auth", f"Bearer {token}",
        )  # fmt: skip
        assert code == 0, shown
        assert leaks(shown, canary), "the CLI shows the decoded payloads (base64 in JSON)"
        code, raw = await temporal_cli(*args, "--output", "json")
        assert code == 0, raw
        assert leaks(raw, canary) == []


async def test_the_codec_endpoint_refuses_what_it_should(
    dev_server: EmbeddedTemporal, dev: Client, pool: asyncpg.Pool
) -> None:
    token = uuid.uuid4().hex
    config = settings(dev_server, {"k2": new_key()}, DURABLE_CODEC_TOKEN=token)
    auth = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    stranger = AesGcmCodec(parse_codec_keys(f"k1:{new_key()}"))
    foreign = await stranger.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])

    async with codec_server(dev, pool, config) as endpoint:
        url = f"{endpoint}/decode"
        body = b'{"payloads": []}'
        for headers in (
            {},
            {"authorization": "Bearer wrong"},
            {"authorization": f"Basic {token}"},
            {"authorization": token},
        ):
            status, got, answer = await asyncio.to_thread(call, "POST", url, body, headers)
            assert status == 401, headers
            assert "Bearer" in answer["error"] and got["www-authenticate"] == "Bearer"

        # The UI's CORS preflight, from the UI's origin, and from another one.
        preflight = {
            "origin": "http://localhost:8233",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-namespace,authorization",
        }
        status, got, _ = await asyncio.to_thread(call, "OPTIONS", url, None, preflight)
        assert status == 204
        assert got["access-control-allow-origin"] == "http://localhost:8233"
        assert "POST" in got["access-control-allow-methods"]
        allowed = {h.strip() for h in got["access-control-allow-headers"].split(",")}
        assert {"content-type", "x-namespace", "authorization"} <= allowed
        status, got, answer = await asyncio.to_thread(
            call, "OPTIONS", url, None, preflight | {"origin": "http://evil.example"}
        )
        assert status == 403 and "access-control-allow-origin" not in got
        assert "DURABLE_CODEC_CORS_ORIGINS" in answer["error"]
        status, got, _ = await asyncio.to_thread(
            call, "POST", url, body, auth | {"origin": "http://127.0.0.1:8233"}
        )
        assert status == 200 and got["access-control-allow-origin"] == "http://127.0.0.1:8233"

        for malformed, message in [
            (b"{not json", "body is not valid JSON"),
            (b"[1]", 'body must be an object like {"payloads"'),
            (b'{"payloads": "x"}', 'body must be an object like {"payloads"'),
            (b'{"payloads": [{"data": "not base64!"}]}', "data"),
            (b'{"payloads": [{"colour": "red"}]}', "colour"),
        ]:
            status, _, answer = await asyncio.to_thread(call, "POST", url, malformed, auth)
            assert status == 400, malformed
            assert message in answer["error"], answer

        status, _, answer = await asyncio.to_thread(call, "POST", url, as_json(foreign), auth)
        assert status == 422
        assert "key id 'k1'" in answer["error"] and "'k2'" in answer["error"]


async def test_no_codec_endpoint_and_no_codec_without_keys(
    dev_server: EmbeddedTemporal, dev: Client, pool: asyncpg.Pool
) -> None:
    config = Settings(TEMPORAL_ADDRESS=dev_server.address)
    assert payload_codec(config) is None
    assert settings_data_converter(config).payload_codec is None
    assert codec_routes_for(config) == []
    async with codec_server(dev, pool, config) as endpoint:
        status, _, _ = await asyncio.to_thread(call, "POST", f"{endpoint}/decode", b"{}")
    assert status == 404


async def test_the_embedded_ui_is_started_with_the_codec_endpoint(tmp_path: Path) -> None:
    endpoint = "http://127.0.0.1:8400/codec"
    server = EmbeddedTemporal(
        port=free_port(),
        ui_port=free_port(),
        ui_codec_endpoint=endpoint,
        log_file=tmp_path / "temporal.log",
    )
    await server.start()
    try:
        ui_settings: dict[str, Any] = {}
        for _ in range(100):  # the UI comes up a moment after the frontend
            try:
                _, _, ui_settings = await asyncio.to_thread(
                    call, "GET", f"{server.ui_address}/api/v1/settings"
                )
                break
            except OSError:
                await asyncio.sleep(0.1)
    finally:
        await server.stop()
    assert ui_settings["Codec"]["Endpoint"] == endpoint


# --- settings -----------------------------------------------------------------------------


def test_codec_keys_in_settings_put_the_first_key_first() -> None:
    k1, k2 = new_key(), new_key()
    codec = payload_codec(Settings(DURABLE_CODEC_KEYS=f" k2:{k2} , k1:{k1} "))
    assert codec is not None
    assert (codec.key_id, codec.key_ids) == ("k2", ("k2", "k1"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "DURABLE_CODEC_KEYS is empty"),
        ("k1", "entry 1 is not 'id:<base64 of 32 bytes>'"),
        ("k1:{key},:{key}", "entry 2 is not 'id:<base64 of 32 bytes>'"),
        ("k 1:{key}", "key id must be"),
        ("k1:not base64!", "key 'k1' is not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "key 'k1' is 5 bytes; AES-256-GCM needs 32"),
        ("k1:{key},k1:{key}", "key id 'k1' is given twice"),
    ],
)
def test_bad_codec_keys_fail_at_startup_with_a_clear_message(value: str, message: str) -> None:
    key = new_key()
    with pytest.raises(ValidationError) as caught:
        Settings(DURABLE_CODEC_KEYS=value.format(key=key))
    text = str(caught.value)
    assert message in text
    assert key not in text and "input_value" not in text, "key material must not be printed"


async def test_a_worker_with_bad_keys_stops_at_startup_naming_the_variable() -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    process = await asyncio.create_subprocess_exec(
        str(BIN / "durable"),
        "worker",
        env={**os.environ, "DURABLE_CODEC_KEYS": f"k1:{key}"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    text = out.decode()
    assert process.returncode == 2, text
    assert "error: bad configuration" in text and "key 'k1' is 16 bytes" in text
    assert key not in text and "Traceback" not in text


async def test_the_api_will_not_serve_an_open_codec_beyond_loopback(tmp_path: Path) -> None:
    from tests.test_cli import durable

    env = {
        "DURABLE_CODEC_KEYS": f"k1:{new_key()}",
        "DURABLE_API_HOST": "0.0.0.0",
        "DURABLE_DATA_DIR": str(tmp_path),
    }
    code, _, err = await durable("dev", "--no-demo", env=env)
    assert code == 2
    assert "the codec endpoint would answer anyone on 0.0.0.0" in err
    assert "DURABLE_CODEC_TOKEN" in err
    assert not (tmp_path / "postgres").exists(), "refused before anything started"
