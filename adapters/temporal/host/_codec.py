"""Payload encryption: an AES-256-GCM payload codec with key ids (so keys can rotate), and the
JSON form of Temporal's codec-server protocol that lets the UI and CLI show decoded payloads.

Temporal runs codecs over payloads only. Search attributes never go through them, and neither
do headers (the SDK's default) nor failure messages and stack traces (the default failure
converter): those stay readable in the history, so they must not carry secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce; fresh and random for every payload
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_GENERATE_HINT = (
    'make one with: python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
)


class CodecKeyError(ValueError):
    """DURABLE_CODEC_KEYS is malformed. The message names the key id, never key material."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload could not be decrypted with the configured keys."""


class UnknownEncryptionKey(PayloadDecryptionError):
    """A payload was encrypted with a key id that is not configured (here)."""

    def __init__(self, key_id: str, configured: Sequence[str]) -> None:
        self.key_id = key_id
        self.configured = tuple(configured)
        super().__init__(
            f"payload was encrypted with key id {key_id!r}, which is not configured "
            f"(configured key ids: {', '.join(map(repr, configured))}); to read it, add that key "
            f"to DURABLE_CODEC_KEYS after the key that encrypts"
        )


class MalformedCodecRequest(ValueError):
    """A codec-server request body that is not `{"payloads": [...]}` in proto3 JSON."""


@dataclass(frozen=True)
class CodecKey:
    id: str
    secret: bytes = field(repr=False)


def parse_codec_keys(text: str) -> list[CodecKey]:
    """Parse `id:<base64 of 32 bytes>,id:<...>`: the first key encrypts, every key decrypts.

    Raises:
        CodecKeyError: empty, malformed, bad base64, not 32 bytes, or a repeated id.
    """
    keys: list[CodecKey] = []
    entries = [e.strip() for e in text.split(",")]
    if not any(entries):
        raise CodecKeyError(
            "DURABLE_CODEC_KEYS is empty; unset it to run without payload encryption, or give "
            f"keys as 'id:<base64 of 32 bytes>,...' ({_GENERATE_HINT})"
        )
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = (part.strip() for part in entry.partition(":"))
        if not sep or not key_id:
            raise CodecKeyError(
                f"DURABLE_CODEC_KEYS entry {position} is not 'id:<base64 of 32 bytes>'"
            )
        if not _KEY_ID.fullmatch(key_id):
            raise CodecKeyError(
                f"DURABLE_CODEC_KEYS entry {position}: key id must be 1-64 of A-Z a-z 0-9 . _ -"
            )
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise CodecKeyError(
                f"DURABLE_CODEC_KEYS: key {key_id!r} is not valid base64 ({_GENERATE_HINT})"
            ) from None
        if len(secret) != KEY_BYTES:
            raise CodecKeyError(
                f"DURABLE_CODEC_KEYS: key {key_id!r} is {len(secret)} bytes; AES-256-GCM needs "
                f"{KEY_BYTES} ({_GENERATE_HINT})"
            )
        if any(k.id == key_id for k in keys):
            raise CodecKeyError(f"DURABLE_CODEC_KEYS: key id {key_id!r} is given twice")
        keys.append(CodecKey(key_id, secret))
    return keys


class AesGcmCodec(PayloadCodec):
    """Encrypts each payload whole (data and metadata) with the first key; decrypts with any.

    An encrypted payload has metadata `encoding: binary/encrypted` and `encryption-key-id`, and
    data = nonce + ciphertext, with the key id as associated data. Payloads that are not
    encrypted pass through `decode` unchanged, so runs from before encryption stay readable.
    """

    def __init__(self, keys: Sequence[CodecKey]) -> None:
        if not keys:
            raise CodecKeyError("a payload codec needs at least one key")
        self._encrypting = keys[0].id
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}

    @property
    def key_id(self) -> str:
        """The id of the key new payloads are encrypted with."""
        return self._encrypting

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id this codec decrypts, the encrypting one first."""
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"AesGcmCodec(key_ids={self.key_ids!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        key_id = self._encrypting.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._encrypting].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise PayloadDecryptionError(
                f"encrypted payload has no {KEY_ID_METADATA!r} metadata: it was not made by "
                "this codec"
            )
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEncryptionKey(key_id, self.key_ids)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} failed authentication: the key "
                "configured under that id is not the one that encrypted it, or the payload "
                "was altered"
            ) from None
        try:
            return Payload.FromString(plain)
        except DecodeError as err:
            raise PayloadDecryptionError(
                f"payload decrypted with key id {key_id!r} is not a payload: {err}"
            ) from None


async def codec_json(
    codec: PayloadCodec, body: bytes, direction: Literal["encode", "decode"]
) -> dict[str, Any]:
    """Run `codec` over a codec-server request body and return the response body.

    The body is `{"payloads": [{"metadata": {key: base64}, "data": base64}, ...]}`, Temporal's
    `Payloads` message in proto3 JSON; the response has the same shape.

    Raises:
        MalformedCodecRequest: the body is not that shape.
        PayloadDecryptionError: decoding met a payload the codec's keys cannot decrypt.
    """
    shape = '{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}'
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MalformedCodecRequest(f"body is not valid JSON: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get("payloads"), list):
        raise MalformedCodecRequest(f"body must be an object like {shape}")
    try:
        payloads = json_format.ParseDict(document, Payloads()).payloads
    except json_format.ParseError as err:
        raise MalformedCodecRequest(f"body must be an object like {shape}: {err}") from None
    if direction == "encode":
        converted = await codec.encode(payloads)
    else:
        converted = await codec.decode(payloads)
    return {"payloads": [json_format.MessageToDict(p) for p in converted]}
