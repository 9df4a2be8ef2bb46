"""The fleet signing key at rest: AES-256-GCM under DURABLE_FLEET_KEY_ENCRYPTION_KEY (a key that
is never in the database), so reading `fleet_signing_keys` alone mints no runtime JWT.

A sealed key is `v1` + a 12-byte nonce + the ciphertext of the 32-byte P-256 private scalar
(with its tag); the key id is the associated data, so a sealed key moved to another row does
not open."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"v1"
NONCE_BYTES = 12
KEY_BYTES = 32
ENCRYPTION_KEY_ENV = "DURABLE_FLEET_KEY_ENCRYPTION_KEY"


def parse_encryption_key(text: str) -> bytes:
    """DURABLE_FLEET_KEY_ENCRYPTION_KEY: base64 (standard or URL-safe) of 32 random bytes, e.g.
    `openssl rand -base64 32`."""
    raw = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(
            f"{ENCRYPTION_KEY_ENV} must be base64 of {KEY_BYTES} bytes: openssl rand -base64 32"
        )
    return key


def seal(encryption_key: bytes, kid: str, scalar: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return VERSION + nonce + AESGCM(encryption_key).encrypt(nonce, scalar, kid.encode())


def unseal(encryption_key: bytes, kid: str, sealed: bytes) -> bytes:
    """The private scalar, or ValueError when the blob is not sealed or the key is another."""
    head, nonce = sealed[: len(VERSION)], sealed[len(VERSION) : len(VERSION) + NONCE_BYTES]
    if head != VERSION or len(nonce) != NONCE_BYTES:
        raise ValueError(f"fleet signing key {kid!r} is not sealed in a format this version reads")
    try:
        return AESGCM(encryption_key).decrypt(
            nonce, sealed[len(VERSION) + NONCE_BYTES :], kid.encode()
        )
    except InvalidTag:
        raise ValueError(
            f"fleet signing key {kid!r} does not decrypt with {ENCRYPTION_KEY_ENV}: it was "
            "sealed under another key. Set the key it was sealed with (or, to start over, "
            "delete the rows of fleet_signing_keys: every worker must then register again)"
        ) from None


def local_encryption_key(path: Path) -> bytes:
    """The embedded stack's encryption key, in `path` (owner-only, 0600), made on first use.
    It keeps the key out of the database even in `durable dev`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # owner-only, whatever it was left as
        return parse_encryption_key(path.read_text())
    with os.fdopen(fd, "w") as out:
        out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    return parse_encryption_key(path.read_text())
