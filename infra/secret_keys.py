"""The keys behind tenants' secrets: envelope encryption with AES-256-GCM (`cryptography`).

Each tenant has one random 32-byte data key; its secrets' values are encrypted with
it, each bound to (tenant, name) as associated data, so a ciphertext copied to
another name or tenant does not open. The data key is stored wrapped (encrypted)
by the deployment's master key, `LOOM_SECRETS_KEY`; rotating the master key only
re-wraps the data keys. AES-GCM rather than Fernet: associated data, and a
standard any auditor reads.

The embedded default keeps a generated master key in `<data dir>/secrets-key`
(mode 0600), as it does the JWT secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.key_file import read_or_make

KEY_BYTES = 32
_NONCE_BYTES = 12
GENERATED_KEY_FILE = "secrets-key"


class SecretsKeyError(ValueError):
    """A key that cannot be used: malformed, or not the one that wrapped what is stored."""


class MasterKey:
    """The deployment's key-encryption key; never printed, never stored beside the data."""

    __slots__ = ("_aead", "fingerprint")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise SecretsKeyError(f"a secrets key is {KEY_BYTES} bytes, got {len(raw)}")
        self._aead = AESGCM(raw)
        # Names the key in what it wrapped without revealing it: a wrong key is told apart
        # from a corrupted record, and rotation knows what is left to re-wrap.
        self.fingerprint = hmac.new(raw, b"loom secrets key", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_base64(cls, text: str, where: str = "LOOM_SECRETS_KEY") -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SecretsKeyError(f"{where} is not base64") from None
        if len(raw) != KEY_BYTES:
            raise SecretsKeyError(
                f"{where} must be {KEY_BYTES} random bytes in base64, got {len(raw)}"
            )
        return cls(raw)

    def __repr__(self) -> str:
        return f"MasterKey({self.fingerprint})"

    def wrap(self, tenant: str, data_key: bytes) -> str:
        return _seal(self._aead, data_key, f"loom data key:{tenant}")

    def unwrap(self, tenant: str, wrapped: str) -> bytes:
        try:
            return _open(self._aead, wrapped, f"loom data key:{tenant}")
        except InvalidTag:
            raise SecretsKeyError(
                f"the secrets key does not open tenant {tenant}'s data key"
            ) from None


class DataKey:
    """One tenant's key for its secrets' values."""

    __slots__ = ("_aead", "raw", "tenant")

    def __init__(self, tenant: str, raw: bytes) -> None:
        self.tenant = tenant
        self.raw = raw
        self._aead = AESGCM(raw)

    @classmethod
    def new(cls, tenant: str) -> DataKey:
        return cls(tenant, AESGCM.generate_key(bit_length=256))

    def __repr__(self) -> str:
        return f"DataKey({self.tenant})"

    def encrypt(self, name: str, value: str) -> str:
        return _seal(self._aead, value.encode(), f"loom secret:{self.tenant}:{name}")

    def decrypt(self, name: str, sealed: str) -> str:
        try:
            return _open(self._aead, sealed, f"loom secret:{self.tenant}:{name}").decode()
        except InvalidTag:
            raise SecretsKeyError(f"secret {name} of tenant {self.tenant} does not open") from None


def _seal(aead: AESGCM, plain: bytes, bound_to: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    return base64.b64encode(nonce + aead.encrypt(nonce, plain, bound_to.encode())).decode()


def _open(aead: AESGCM, sealed: str, bound_to: str) -> bytes:
    raw = base64.b64decode(sealed)
    return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())


def new_master_key_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def generated_master_key(directory: Path) -> MasterKey:
    """The key kept in `directory/secrets-key`, made (mode 0600) on first use."""
    path = directory / GENERATED_KEY_FILE
    return MasterKey.from_base64(read_or_make(path, new_master_key_text), where=str(path))
